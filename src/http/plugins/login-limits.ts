// The log-in limits on the two token endpoints (src/services/login-limits.ts):
// an address blocked as a whole gets 429 with Retry-After before its body is
// even parsed (so no hash is computed for it); an identity blocked at an
// address gets the same once the body names it; a wrong secret counts
// against the identity and the address, a refusal for busy against the
// address only. Refusals of blocked or busy log-ins are held a second before
// they are sent (holdRefusal), for clients that ask again at once.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { Errors, isError, withRetryAfter, type UnitedErrorName } from '../../errors.js'
import { holdRefusal, type LoginAttempt, type Outcome } from '../../services/login-limits.js'

export function loginLimits (fastify: FastifyInstance, kind: LoginAttempt['kind']) {
  const limiter = fastify.services.loginLimits
  const refusal: UnitedErrorName = kind === 'user' ? 'INVALID_CREDENTIALS' : 'ROBOT_AUTH_FAILED'
  // Anything else (a revoked credential, 503 when the database could not
  // check it) says nothing about whether the client is guessing.
  const outcome = (err: unknown): Outcome => isError(err, refusal) ? 'failed' : isError(err, 'BUSY') ? 'busy' : 'uncounted'
  return {
    /** onRequest hook: refuses an address blocked as a whole. */
    async onRequest (request: FastifyRequest): Promise<void> {
      const retryAfter = await limiter.addressBlocked(request.ip)
      if (retryAfter === null) return
      await holdRefusal()
      throw withRetryAfter(new Errors.TOO_MANY_ATTEMPTS(), retryAfter)
    },

    /** Runs a log-in of `name` under the limits (429 when blocked). */
    async counted<T> (request: FastifyRequest, name: string, login: () => Promise<T>): Promise<T> {
      try {
        return await limiter.attempt(request.ip, { via: 'api', kind, name }, login, outcome)
      } catch (err) {
        if (isError(err, 'TOO_MANY_ATTEMPTS') || isError(err, 'BUSY')) await holdRefusal()
        throw err
      }
    }
  }
}
