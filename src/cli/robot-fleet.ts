// How the example robot reports what its robots do: every event for one
// robot on the terminal; for a fleet, only what an operator must see. Each
// robot's error is printed once (and again when it changes, or when it comes
// back after the robot was connected), not once per retry; `connected M of N`
// when M changes; and a summary line that counts every error.
import { readFileSync } from 'node:fs'
import type { RobotEvent, RobotStats } from './robot.js'

export interface Credential { serial: string, token: string }

/**
 * The credentials file (a JSON array of {"serial","token"}, as `npm run
 * manage -- create-robots` writes it), and the first `wanted` of them; all
 * when `wanted` is undefined. Throws a message for the user.
 */
export function readCredentials (file: string, wanted: number | undefined): Credential[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'))
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`)
  }
  const shape = 'a JSON array of {"serial","token"} (what `npm run manage -- create-robots` writes)'
  if (!Array.isArray(parsed)) throw new Error(`${file} must hold ${shape}`)
  const serials = new Set<string>()
  const credentials = parsed.map((entry: unknown, i): Credential => {
    const { serial, token } = (typeof entry === 'object' && entry !== null ? entry : {}) as Record<string, unknown>
    if (typeof serial !== 'string' || serial === '' || typeof token !== 'string' || token === '') {
      throw new Error(`${file}: entry ${i + 1} is not {"serial","token"} with two non-empty strings; the file must hold ${shape}`)
    }
    // Two robots with one serial would take each other's connection over, forever.
    if (serials.has(serial)) throw new Error(`${file}: the serial ${serial} appears twice`)
    serials.add(serial)
    return { serial, token }
  })
  if (credentials.length === 0) throw new Error(`${file} holds no credentials`)
  if (wanted === undefined) return credentials
  if (wanted > credentials.length) {
    throw new Error(`--fleet ${wanted} asks for more robots than the ${credentials.length} in ${file}: run --fleet ${credentials.length}, or create more robots with \`npm run manage -- create-robots\``)
  }
  return credentials.slice(0, wanted)
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`

/** The errors of a run so far, counted, with what they were. */
export function countErrors (all: RobotStats[]): { total: number, parts: string[] } {
  const sum = (pick: (s: RobotStats) => number): number => all.reduce((n, s) => n + pick(s), 0)
  const parts: Array<[number, string]> = [
    [sum((s) => s.failedAttempts), 'failed connection attempt'],
    [sum((s) => s.lost), 'connection lost|connections lost'],
    [sum((s) => s.rejected), 'frame rejected|frames rejected'],
    [sum((s) => s.unacked), 'frame never acked|frames never acked']
  ]
  return {
    total: parts.reduce((n, [count]) => n + count, 0),
    parts: parts.filter(([count]) => count > 0).map(([count, words]) => {
      const [one, many] = words.split('|') as [string, string | undefined]
      return plural(count, one, many)
    })
  }
}

function names (serials: string[]): string {
  return serials.length <= 5 ? serials.join(', ') : `${serials.slice(0, 5).join(', ')} and ${serials.length - 5} more`
}

/** The periodic line: robots, connections, frames, and every error. */
export function summaryLine (robots: Array<{ serial: string, stats: RobotStats }>): string {
  const all = robots.map((r) => r.stats)
  const sum = (pick: (s: RobotStats) => number): number => all.reduce((n, s) => n + pick(s), 0)
  const errors = countErrors(all)
  const failing = robots.filter((r) => !r.stats.connected && !r.stats.gaveUp && r.stats.lastError !== undefined).map((r) => r.serial)
  const gaveUp = robots.filter((r) => r.stats.gaveUp).map((r) => r.serial)
  return `${plural(robots.length, 'robot')}, ${all.filter((s) => s.connected).length} connected: ` +
    `${plural(sum((s) => s.sent), 'frame')} sent, ${sum((s) => s.ok)} acked ok; ` +
    `${plural(errors.total, 'error')}${errors.parts.length > 0 ? ` (${errors.parts.join(', ')})` : ''}` +
    `${failing.length > 0 ? `; failing: ${names(failing)}` : ''}${gaveUp.length > 0 ? `; gave up: ${names(gaveUp)}` : ''}`
}

/** The last line of a run. */
export function doneLine (robots: Array<{ serial: string, stats: RobotStats }>, interrupted: boolean): string {
  const all = robots.map((r) => r.stats)
  const errors = countErrors(all)
  const gaveUp = robots.filter((r) => r.stats.gaveUp).map((r) => r.serial)
  return `done: ${all.reduce((n, s) => n + s.ok, 0)} frames acked ok, ${plural(errors.total, 'error')}` +
    `${errors.parts.length > 0 ? ` (${errors.parts.join(', ')})` : ''}` +
    `${gaveUp.length > 0 ? `; ${gaveUp.length} of ${robots.length} gave up: ${names(gaveUp)}` : ''}` +
    `${interrupted ? '; interrupted before --count was reached' : ''}`
}

export type Print = (line: string) => void

/** One robot, everything: each ack, command, connection and retry. */
export function verboseReporter (print: Print): { robot: (serial: string) => (e: RobotEvent) => void, finish: () => void } {
  return {
    robot: (serial) => (e) => {
      switch (e.kind) {
        case 'connected': print(`${serial}: connected as ${e.uuid} (state ${e.state})`); break
        case 'disconnected': if (!e.expected) print(`${serial}: connection lost; reconnecting with a fresh token`); break
        case 'failed': print(`${serial}: ${e.message}; retrying in ${e.retryInMs} ms`); break
        case 'gave-up': print(`${serial}: ${e.message}; giving up: refused, so --count cannot be reached`); break
        case 'ack': print(`${serial}: ack ${e.id} ${e.ok ? 'ok' : 'error'}${e.errors.length > 0 ? ` ${e.errors.join('; ')}` : ''}`); break
        case 'command': print(`${serial}: command ${e.command} from ${e.issuedBy} → state ${e.state}`); break
      }
    },
    finish: () => {}
  }
}

/** Between two `connected M of N` lines: a fleet connecting at once prints a few lines, not one per robot. */
const CONNECTED_EVERY_MS = 500

/** A fleet (or --quiet): errors once per robot, `connected M of N` on changes. */
export function fleetReporter (print: Print, size: number): { robot: (serial: string) => (e: RobotEvent) => void, finish: () => void } {
  let connected = 0
  let printed = 0
  let lastPrintAt = 0
  let timer: NodeJS.Timeout | undefined
  let finished = false

  const printConnected = (): void => {
    timer = undefined
    if (finished || connected === printed) return
    printed = connected
    lastPrintAt = Date.now()
    print(`connected ${connected} of ${size}`)
  }
  const connectedChanged = (): void => {
    if (timer !== undefined) return
    const wait = lastPrintAt + CONNECTED_EVERY_MS - Date.now()
    if (wait <= 0) printConnected()
    else timer = setTimeout(printConnected, wait)
  }

  return {
    robot: (serial) => {
      let lastError: string | undefined
      // The first of each distinct error, and again when it changes: not every retry.
      const error = (key: string, line: string): void => {
        if (key === lastError) return
        lastError = key
        print(`${serial}: ${line}`)
      }
      return (e) => {
        switch (e.kind) {
          case 'connected':
            lastError = undefined
            connected++
            connectedChanged()
            break
          case 'disconnected':
            connected--
            connectedChanged()
            if (!e.expected) error('connection lost', 'connection lost; reconnecting')
            break
          case 'failed': error(e.message, `${e.message} (retrying; printed again only if it changes)`); break
          case 'gave-up': print(`${serial}: gave up: ${e.message} (refused, so --count cannot be reached)`); break
          case 'ack': if (!e.ok) error(`rejected: ${e.errors.join('; ')}`, `frame ${e.id} rejected: ${e.errors.join('; ')}`); break
          case 'command': break
        }
      }
    },
    finish: () => {
      // The count the throttle held back, before the last line.
      if (timer !== undefined) {
        clearTimeout(timer)
        printConnected()
      }
      finished = true
    }
  }
}
