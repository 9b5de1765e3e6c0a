// fp plugin 'auth-guard': `fastify.authenticate` and `fastify.requireStaff`,
// onRequest hooks that run before the body is parsed, so that a request with
// no JWT gets 401 before a malformed body gets 400.
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { extractJwt } from '../../contract/credentials.js'
import { Errors, isError } from '../../errors.js'
import { isApiKey } from '../../services/api-keys.js'
import type { AuditContext, UserPrincipal } from '../../services/index.js'
import { holdRefusal } from '../../services/login-limits.js'

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
    requireStaff: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
  interface FastifyRequest {
    principal: UserPrincipal | null
  }
}

/** Who did it, for the audit log. */
export function auditContext (request: FastifyRequest): AuditContext {
  const p = request.principal
  return { actor: p === null ? null : { id: p.id, username: p.username }, ip: request.ip }
}

export default fp(async (fastify) => {
  fastify.decorateRequest('principal', null)

  async function authenticate (request: FastifyRequest): Promise<void> {
    const token = extractJwt(request.headers)
    if (token === null) throw new Errors.UNAUTHORIZED()
    if (!isApiKey(token)) {
      request.principal = await fastify.services.auth.verifyAccess(token)
      return
    }
    // docs/protocol.md §13.4: an API key acts as its user; unknown keys count as failed log-ins.
    try {
      request.principal = await fastify.services.apiKeys.authenticate(token, request.ip)
    } catch (err) {
      if (isError(err, 'TOO_MANY_ATTEMPTS') || isError(err, 'BUSY')) await holdRefusal()
      throw err
    }
  }

  fastify.decorate('authenticate', authenticate)
  fastify.decorate('requireStaff', async (request: FastifyRequest) => {
    await authenticate(request)
    if (request.principal?.isStaff !== true) throw new Errors.STAFF_ONLY()
  })
}, { name: 'auth-guard', dependencies: ['services'] })
