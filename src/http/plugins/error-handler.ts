// fp plugin 'error-handler' (CONTRACT §7): every error is
// {statusCode, error, message, code?}. 4xx keep their message; 5xx are logged
// with the request and answered without details (no stack, SQL or secret).
import { STATUS_CODES } from 'node:http'
import type { FastifyError } from 'fastify'
import fp from 'fastify-plugin'

/** Sequelize errors that mean "the database is not reachable right now". */
export function isDatabaseDown (err: Error): boolean {
  return /^Sequelize(Connection\w*|HostNotFound|HostNotReachable|AccessDenied|InvalidConnection|Timeout)Error$/.test(err.name)
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
    }
    // UNITED_BUSY (the scrypt queue is full, services/secrets.ts) is load, not a fault: not an error line per request.
    if (status >= 500 && code !== 'UNITED_BUSY') {
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
