// `npm run manage -- <command>`: administration from the shell, with the
// same config, database and services as the server, and no HTTP.
//   createsuperuser --username U [--password P]   (prompts for what is missing on a terminal)
//   create-robots --count N --out FILE [--prefix P] [--force]
import { parseArgs } from 'node:util'
import { ConfigError } from '../config.js'
import { Errors } from '../errors.js'
import { UsageError, withServices } from './context.js'
import { createRobots, CREATE_ROBOTS_USAGE } from './create-robots.js'

const USAGE = `usage: npm run manage -- createsuperuser [--username U] [--password P]
       npm run manage -- ${CREATE_ROBOTS_USAGE}

createsuperuser creates a staff user. On a terminal it asks for what is
missing; elsewhere both flags are required.

create-robots creates N robots with generated secrets (serials P-001, P-002, …;
P is "robot" unless --prefix says otherwise) and writes their credentials to
FILE, readable only by you, for \`npm run robot -- --fleet N --credentials FILE\`.
It refuses to replace an existing FILE unless --force is given.

DATABASE_URL selects the database, as for the server.`

/** The user pressed Ctrl-C, or ended the input (Ctrl-D on an empty line), at a prompt. */
class Cancelled extends Error {}

/**
 * Prompts on a terminal, read in raw mode for the whole dialogue: the
 * terminal itself echoes nothing, and this echoes only what may be seen (the
 * username; never a password, not even as stars). Raw mode from the first
 * prompt to the last, so that keys typed ahead (a password typed before its
 * prompt appears) are not echoed by the terminal either. Enter ends a line;
 * Backspace deletes one character, Ctrl-U the whole line; Ctrl-C cancels, and
 * so does Ctrl-D on an empty line; other control keys and escape sequences
 * (arrows) are ignored. (readline's promise API cannot hide what is typed:
 * the old trick of replacing its `_writeToOutput` is never called there.)
 */
class Prompter {
  private pending = ''
  private ended = false
  private wake: (() => void) | null = null
  private afterCr = false
  private readonly onData = (chunk: string): void => { this.pending += chunk; this.notify() }
  private readonly onEnd = (): void => { this.ended = true; this.notify() }

  constructor (private readonly input: NodeJS.ReadStream, private readonly output: NodeJS.WriteStream) {
    input.setRawMode(true)
    input.setEncoding('utf8')
    input.on('data', this.onData)
    input.on('end', this.onEnd)
    input.on('error', this.onEnd) // a terminal that went away (EIO): as the end of input
    input.resume()
  }

  close (): void {
    this.input.off('data', this.onData)
    this.input.off('end', this.onEnd)
    this.input.off('error', this.onEnd)
    try {
      this.input.setRawMode(false)
    } catch {} // the terminal is gone: nothing to restore
    this.input.pause()
  }

  private notify (): void {
    const wake = this.wake
    this.wake = null
    wake?.()
  }

  /** The next character (a whole code point) typed. */
  private async next (): Promise<string> {
    while (this.pending === '') {
      if (this.ended) throw new Cancelled('the input ended')
      await new Promise<void>((resolve) => { this.wake = resolve })
    }
    const c = String.fromCodePoint(this.pending.codePointAt(0) as number)
    this.pending = this.pending.slice(c.length)
    return c
  }

  async line (question: string, echo: boolean): Promise<string> {
    this.output.write(question)
    let value = ''
    const erase = (n: number): void => { if (echo && n > 0) this.output.write('\b \b'.repeat(n)) }
    for (;;) {
      const c = await this.next()
      const afterCr = this.afterCr
      this.afterCr = c === '\r'
      if (c === '\n' && afterCr) continue // CR LF (pasted): one Enter
      if (c === '\r' || c === '\n') {
        this.output.write('\n')
        return value
      }
      if (c === '\u0003') {
        this.output.write('^C\n')
        throw new Cancelled('cancelled')
      }
      if (c === '\u0004') {
        if (value !== '') continue
        this.output.write('\n')
        throw new Cancelled('the input ended')
      }
      if (c === '\u007f' || c === '\b') {
        const chars = [...value]
        if (chars.length > 0) { chars.pop(); value = chars.join(''); erase(1) }
        continue
      }
      if (c === '\u0015') {
        erase([...value].length)
        value = ''
        continue
      }
      if (c === '\u001b') {
        // An escape sequence (an arrow key…): ESC [ or ESC O, parameters, one final byte.
        if (this.pending.startsWith('[') || this.pending.startsWith('O')) {
          const end = this.pending.slice(1).search(/[\u0040-\u007e]/)
          this.pending = end === -1 ? '' : this.pending.slice(end + 2)
        }
        continue
      }
      if (c < ' ') continue // other control keys
      value += c
      if (echo) this.output.write(c)
    }
  }
}

async function createSuperuser (args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { username: { type: 'string' }, password: { type: 'string' } }, strict: true })
  const interactive = process.stdin.isTTY === true
  let username = values.username
  let password = values.password
  if (username === undefined && !interactive) throw new UsageError('--username is required when not on a terminal')
  if (password === undefined && !interactive) throw new UsageError('--password is required when not on a terminal')
  if (username === undefined || password === undefined) {
    const prompter = new Prompter(process.stdin, process.stdout)
    try {
      username ??= (await prompter.line('Username: ', true)).trim()
      if (password === undefined) {
        // Taken as typed: spaces are part of a password.
        password = await prompter.line('Password: ', false)
        if (await prompter.line('Password (again): ', false) !== password) throw new UsageError('the passwords do not match')
      }
    } finally {
      prompter.close()
    }
  }
  if (!/^[A-Za-z0-9_.@+-]{1,150}$/.test(username)) throw new UsageError('the username may hold only letters, digits and _ . @ + - (1-150 characters)')
  if (password.length < 8) throw new UsageError('the password must have at least 8 characters')

  await withServices(async (services) => {
    const user = await services.users.create({ username, password, isStaff: true }, { actor: null })
    process.stdout.write(`Superuser "${user.username}" created (id ${user.id}).\n`)
  })
  return 0
}

async function main (argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  try {
    if (command === 'createsuperuser') return await createSuperuser(rest)
    if (command === 'create-robots') return await createRobots(rest)
    process.stderr.write(`${command === undefined ? '' : `unknown command: ${command}\n`}${USAGE}\n`)
    return 2
  } catch (err) {
    if (err instanceof Cancelled) {
      process.stderr.write(`manage: ${err.message}; nothing was created\n`)
      return 130
    }
    if (err instanceof UsageError || err instanceof ConfigError || /^ERR_PARSE_ARGS_/.test(String((err as { code?: string }).code))) {
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
