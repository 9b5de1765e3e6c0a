// `npm run manage -- create-robots`: a fleet in one command. Creates N robots
// with generated secrets, through the same service (and so the same audit
// records) as the management API, and writes their credentials in the format
// the example robot's fleet mode reads: a JSON array of {"serial","token"}.
import { basename, dirname, join } from 'node:path'
import { closeSync, lstatSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { Config } from '../config.js'
import { UsageError, withServices } from './context.js'

export const CREATE_ROBOTS_USAGE = 'create-robots --count N --out FILE [--prefix P] [--force]'

const MAX_ROBOTS = 10_000
/** The longest serial the robots table and the API take. */
const SERIAL_MAX = 128
const DEFAULT_ROBOT_URL = 'http://127.0.0.1:8000'

/** P-001 … P-020: zero-padded to at least 3 digits, so that they sort in order. */
export function fleetSerials (prefix: string, count: number): string[] {
  const width = Math.max(3, String(count).length)
  return Array.from({ length: count }, (_, i) => `${prefix}-${String(i + 1).padStart(width, '0')}`)
}

interface CredentialsFile {
  add: (credential: { serial: string, token: string }) => void
  /** Closes the array and puts the file in place. */
  finish: () => void
  /** Removes it (nothing was created). */
  discard: () => void
}

/**
 * Opens the credentials file before anything is created, so that a refusal
 * costs nothing. It is created with mode 0600 (O_EXCL, so never through an
 * existing file or link): the secrets are never readable by others, not for a
 * moment. With `replace`, it is written beside the target and renamed over it
 * at the end, so the old file stays whole until then.
 */
function openCredentialsFile (path: string, replace: boolean): CredentialsFile {
  const target = replace ? join(dirname(path), `.${basename(path)}.${process.pid}.tmp`) : path
  // Checked now, not found out at the rename, after the robots were created.
  if (replace && lstatSync(path, { throwIfNoEntry: false })?.isDirectory() === true) throw new Error(`${path} is a directory`)
  let fd: number
  try {
    fd = openSync(target, 'wx', 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST' && !replace) throw new Error(`${path} already exists; --force replaces it`)
    throw new Error(`cannot create ${path}: ${(err as Error).message}`)
  }
  let written = 0
  return {
    add (credential) {
      writeSync(fd, `${written === 0 ? '[' : ','}\n  ${JSON.stringify({ serial: credential.serial, token: credential.token })}`)
      written++
    },
    finish () {
      writeSync(fd, written === 0 ? '[]\n' : '\n]\n')
      closeSync(fd)
      if (!replace) return
      try {
        renameSync(target, path)
      } catch (err) {
        throw new Error(`cannot replace ${path} (${(err as Error).message}); the credentials are in ${target}`)
      }
    },
    discard () {
      closeSync(fd)
      unlinkSync(target)
    }
  }
}

/** A path as it can be pasted into a shell. */
function shellWord (word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, "'\\''")}'`
}

/** The server's HTTP address as the example robot should use it, or undefined when it is the robot's default. */
function robotUrl (config: Config): string | undefined {
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${config.HTTP_PORT}`
  return url === DEFAULT_ROBOT_URL ? undefined : url
}

function some (serials: string[]): string {
  return serials.length <= 3 ? serials.join(', ') : `${serials.slice(0, 3).join(', ')} and ${serials.length - 3} more`
}

export async function createRobots (args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      count: { type: 'string' },
      prefix: { type: 'string', default: 'robot' },
      out: { type: 'string' },
      force: { type: 'boolean', default: false }
    },
    strict: true
  })
  if (values.count === undefined || !/^\d+$/.test(values.count) || Number(values.count) < 1 || Number(values.count) > MAX_ROBOTS) {
    throw new UsageError(`--count takes a whole number from 1 to ${MAX_ROBOTS}`)
  }
  if (values.out === undefined || values.out === '') throw new UsageError('--out FILE is required: the credentials file to write')
  const count = Number(values.count)
  const serials = fleetSerials(values.prefix, count)
  const longest = serials[serials.length - 1] as string
  // The serial rules of the API: 1–128 characters, no control characters.
  if (values.prefix === '' || [...values.prefix].some((c) => c.charCodeAt(0) < 0x20) || longest.length > SERIAL_MAX) {
    throw new UsageError(`--prefix must be 1 to ${SERIAL_MAX - (longest.length - values.prefix.length)} characters, without control characters (the serials are ${serials[0] as string} …)`)
  }
  const out = values.out

  const file = openCredentialsFile(out, values.force)
  // Ctrl-C stops after the robot being created, and the file keeps every secret made so far.
  let interrupted = false
  const onSigint = (): void => { interrupted = true }
  process.on('SIGINT', onSigint)
  let created = 0
  let config: Config
  try {
    config = await withServices(async (services, serverConfig) => {
      const taken: string[] = []
      for (const serial of serials) if (await services.robots.findBySerial(serial) !== null) taken.push(serial)
      if (taken.length > 0) throw new Error(`${some(taken)} already exist${taken.length === 1 ? 's' : ''}; nothing was created: choose another --prefix`)
      for (const serial of serials) {
        if (interrupted) break
        let robot
        try {
          robot = await services.robots.create({ serial }, { actor: null })
        } catch (err) {
          throw new Error(`${serial}: ${(err as Error).message}`)
        }
        file.add({ serial: robot.serial, token: robot.token })
        created++
      }
      return serverConfig
    })
  } catch (err) {
    if (created === 0) {
      file.discard()
      throw err
    }
    file.finish()
    throw new Error(`${(err as Error).message}; the ${created} robots created before that (of ${count}) have their credentials in ${out}`)
  } finally {
    process.off('SIGINT', onSigint)
  }

  if (created === 0) {
    file.discard()
    process.stderr.write('manage: interrupted; no robot was created\n')
    return 130
  }
  file.finish()
  const range = created === 1 ? serials[0] as string : `${serials[0] as string} … ${serials[created - 1] as string}`
  if (created < count) {
    process.stderr.write(`manage: interrupted; created ${created} of ${count} robots (${range}), their credentials are in ${out}\n`)
    return 130
  }
  const url = robotUrl(config)
  process.stdout.write(`Created ${created} robot${created === 1 ? '' : 's'} (${range}); their credentials are in ${out} (mode 0600), the only copy of their secrets.\n`)
  process.stdout.write(`Next: npm run robot -- --fleet ${created} --credentials ${shellWord(out)}${url === undefined ? '' : ` --url ${url}`}\n`)
  return 0
}
