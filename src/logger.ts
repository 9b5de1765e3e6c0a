// pino options for the whole process: JSON lines, secrets
// redacted, pretty only when a human is watching a terminal.
import { hostname } from 'node:os'
import type { LoggerOptions } from 'pino'

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.authentication',
  'req.headers["x-token"]',
  'req.headers.cookie',
  'password',
  'token',
  'access_token',
  'refresh',
  'access',
  '*.password',
  '*.token'
]

/** `node`: in cluster mode, this node's NODE_ID on every line (docs/operations.md §4). */
export function loggerOptions (level: string, isTTY = false, node?: string): LoggerOptions {
  const options: LoggerOptions = {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    ...(node === undefined ? {} : { base: { pid: process.pid, hostname: hostname(), node } })
  }
  if (isTTY) {
    options.transport = { target: 'pino-pretty', options: { translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' } }
  }
  return options
}
