// fp plugin 'db': connect, migrate at start (docs/protocol.md §1), close on shutdown.
import fp from 'fastify-plugin'
import { createDatabase, type Database, type DatabaseOptions } from '../db/index.js'

declare module 'fastify' {
  interface FastifyInstance { db: Database }
}

export default fp(async (fastify, opts: { url: string } & DatabaseOptions) => {
  const db = createDatabase(opts.url, fastify.log, opts)
  try {
    const applied = await db.migrate()
    if (applied.length > 0) fastify.log.info({ migrations: applied }, 'database migrated')
  } catch (err) {
    await db.close().catch(() => {})
    throw err
  }
  fastify.decorate('db', db)
  fastify.addHook('onClose', async () => { await db.close() })
}, { name: 'db' })
