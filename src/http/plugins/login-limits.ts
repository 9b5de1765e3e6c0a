// The log-in limits of CONTRACT §13 on the two token endpoints: a blocked
// address gets 429 with Retry-After before its body is even parsed (so no
// hash is computed for it), and a wrong secret counts against its address.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Errors, isError, withRetryAfter, type UnitedErrorName } from '../../errors.js'
import type { FailedLogin } from '../../services/login-limits.js'

export function loginLimits (fastify: FastifyInstance, kind: FailedLogin['kind']) {
  const limiter = fastify.services.loginLimits
  const refusal: UnitedErrorName = kind === 'user' ? 'INVALID_CREDENTIALS' : 'ROBOT_AUTH_FAILED'
  return {
    /** onRequest hook: refuses a blocked address. */
    async onRequest (request: FastifyRequest): Promise<void> {
      const retryAfter = await limiter.blocked(request.ip)
      if (retryAfter !== null) throw withRetryAfter(new Errors.TOO_MANY_ATTEMPTS(), retryAfter)
    },

    /**
     * Runs a log-in; a refusal of its credentials is counted, then rethrown.
     * Anything else (503 when the database could not check them, or when too
     * many password checks wait) is rethrown uncounted: it says nothing about
     * the credentials.
     */
    async counted<T> (request: FastifyRequest, name: string, login: () => Promise<T>): Promise<T> {
      try {
        return await login()
      } catch (err) {
        if (isError(err, refusal)) await limiter.failed(request.ip, { via: 'api', kind, name })
        throw err
      }
    }
  }
}
