// fp plugin 'error-handler' (docs/protocol.md §7): every error is
// {statusCode, error, message, code?}. 4xx keep their message; 5xx are logged
// with the request and answered without details (no stack, SQL or secret).
import { STATUS_CODES } from 'node:http'
import type { FastifyError } from 'fastify'
import fp from 'fastify-plugin'
import { reasonOf, UNAVAILABLE_RETRY_AFTER } from '../../services/unavailable.js'

/**
 * SQLSTATE classes and codes of PostgreSQL that mean "cannot answer now", not
 * "this statement is wrong": connection exceptions (08), insufficient
 * resources (53: too many connections, out of memory or disk), operator
 * intervention (57: statement timeout, a terminated session, a server
 * shutting down), a lock not available (55P03).
 */
const PG_UNAVAILABLE = /^(08|53|57)|^55P03$/
/** SQLite's codes for the same: the file is locked, busy, cannot be opened or read. */
const SQLITE_UNAVAILABLE = /^SQLITE_(BUSY|LOCKED|CANTOPEN|IOERR|FULL|PROTOCOL)/
/** The socket to the database failed under a statement (node-postgres gives these no SQLSTATE). */
const SOCKET_FAILED = /^(ECONNRESET|ECONNREFUSED|EPIPE|ETIMEDOUT)$|^Connection terminated/

/** Sequelize errors that mean "the database is not reachable right now". */
export function isDatabaseDown (err: Error): boolean {
  if (/^Sequelize(Connection\w*|HostNotFound|HostNotReachable|AccessDenied|InvalidConnection|Timeout)Error$/.test(err.name)) return true
  if (err.name !== 'SequelizeDatabaseError') return false
  const parent = (err as { parent?: { code?: unknown, message?: unknown } }).parent
  if (typeof parent?.code === 'string') return PG_UNAVAILABLE.test(parent.code) || SQLITE_UNAVAILABLE.test(parent.code) || SOCKET_FAILED.test(parent.code)
  return typeof parent?.message === 'string' && SOCKET_FAILED.test(parent.message)
}

export default fp(async (fastify) => {
  fastify.setErrorHandler((err: FastifyError & { retryAfter?: unknown }, request, reply) => {
    let status = err.statusCode ?? 500
    let code = err.code
    let message = err.message
    if (status < 400 || status > 599) status = 500
    if (isDatabaseDown(err)) {
      status = 503
      code = 'UNITED_DATABASE_UNAVAILABLE'
      message = 'database unavailable'
      err.retryAfter ??= UNAVAILABLE_RETRY_AFTER
    }
    // UNITED_BUSY (the scrypt queue is full, services/secrets.ts) is load, not a fault: not an error line per request.
    // A credential that could not be checked (services/unavailable.ts) is a
    // warning with the cause's class and code only: no SQL, no parameters.
    if (status === 503 && code === 'UNITED_DATABASE_UNAVAILABLE' && reasonOf(err) !== undefined) {
      request.log.warn({ cause: reasonOf(err), url: request.routeOptions.url }, 'credentials could not be checked: the database or the token store did not answer')
    } else if (status >= 500 && code !== 'UNITED_BUSY') {
      request.log.error({ err }, 'request failed')
      if (status === 500) {
        code = 'UNITED_INTERNAL'
        message = 'internal server error'
      }
    } else {
      request.log.info({ code, statusCode: status, message }, 'request rejected')
    }
    if (typeof err.retryAfter === 'number') void reply.header('retry-after', String(err.retryAfter))
    const body: Record<string, unknown> = { statusCode: status, error: STATUS_CODES[status] ?? 'Error', message }
    if (typeof code === 'string') body.code = code
    void reply.code(status).type('application/json; charset=utf-8').send(body)
  })

  fastify.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0] ?? ''}`, code: 'UNITED_NO_ROUTE' })
  })
}, { name: 'error-handler' })
