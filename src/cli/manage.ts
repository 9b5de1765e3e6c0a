// `npm run manage -- <command>`: administration from the shell, with the
// same config, database and services as the server, and no HTTP.
//   createsuperuser --username U [--password P]   (prompts for what is missing on a terminal)
import { createInterface } from 'node:readline/promises'
import { parseArgs } from 'node:util'
import pino from 'pino'
import { ConfigError, dbOptions, loadConfig } from '../config.js'
import { createDatabase } from '../db/index.js'
import { Errors } from '../errors.js'
import { createServices } from '../services/index.js'

const USAGE = `usage: npm run manage -- createsuperuser [--username U] [--password P]

Creates a staff user. On a terminal it asks for what is missing; elsewhere
both flags are required. DATABASE_URL selects the database, as for the server.`

async function ask (question: string, hidden = false): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: true })
  if (hidden) {
    // Echo nothing while the password is typed.
    const write = (rl as unknown as { _writeToOutput: (s: string) => void })
    write._writeToOutput = (s: string) => { if (s.includes(question)) process.stdout.write(s) }
  }
  try {
    return (await rl.question(question)).trim()
  } finally {
    if (hidden) process.stdout.write('\n')
    rl.close()
  }
}

async function createSuperuser (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { username: { type: 'string' }, password: { type: 'string' } }, strict: true })
  const interactive = process.stdin.isTTY === true
  let username = values.username
  let password = values.password
  if (username === undefined) {
    if (!interactive) throw new UsageError('--username is required when not on a terminal')
    username = await ask('Username: ')
  }
  if (password === undefined) {
    if (!interactive) throw new UsageError('--password is required when not on a terminal')
    password = await ask('Password: ', true)
    if (await ask('Password (again): ', true) !== password) throw new UsageError('the passwords do not match')
  }
  if (!/^[A-Za-z0-9_.@+-]{1,150}$/.test(username)) throw new UsageError('the username may hold only letters, digits and _ . @ + - (1-150 characters)')
  if (password.length < 8) throw new UsageError('the password must have at least 8 characters')

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
      const user = await services.users.create({ username, password, isStaff: true }, { actor: null })
      process.stdout.write(`Superuser "${user.username}" created (id ${user.id}).\n`)
    } finally {
      await services.close()
    }
  } finally {
    await db.close()
  }
  return 0
}

class UsageError extends Error {}

async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === 'createsuperuser') return await createSuperuser(rest)
    process.stderr.write(`${command === undefined ? '' : `unknown command: ${command}\n`}${USAGE}\n`)
    return 2
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError || (err as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      process.stderr.write(`manage: ${(err as Error).message}\n${USAGE}\n`)
      return 2
    }
    if (err instanceof Errors.USERNAME_TAKEN) {
      process.stderr.write('manage: a user with this username already exists (usernames are compared without regard to case)\n')
      return 1
    }
    process.stderr.write(`manage: ${(err as Error).message}\n`)
    return 1
  }
}

process.exitCode = await main(process.argv.slice(2))
