// What every `npm run manage` command shares: the server's config, database
// and services, opened for one command and closed after it (no HTTP, no broker).
import pino from 'pino'
import { dbOptions, loadConfig, type Config } from '../config.js'
import { createDatabase } from '../db/index.js'
import { createServices, type Services } from '../services/index.js'

/** A mistake in the command line: manage prints it with the usage and exits 2. */
export class UsageError extends Error {}

/** Runs `work` with the services on the database of DATABASE_URL (migrated first, as the server does). */
export async function withServices<T> (work: (services: Services, config: Config) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env)
  const log = pino({ level: 'warn' })
  const db = createDatabase(config.DATABASE_URL, log, dbOptions(config))
  try {
    await db.migrate()
    const services = createServices({
      db,
      config,
      log,
      jwt: { sign: () => { throw new Error('no JWT signing in the CLI') }, verify: () => { throw new Error('no JWT in the CLI') } }
    })
    try {
      return await work(services, config)
    } finally {
      await services.close()
    }
  } finally {
    await db.close()
  }
}
