// fp plugin 'auth-guard': `fastify.authenticate` and `fastify.requireStaff`,
// onRequest hooks that run before the body is parsed, so that a request with
// no JWT gets 401 before a malformed body gets 400.
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { extractJwt } from '../../contract/credentials.js'
import { Errors } from '../../errors.js'
import type { AuditContext, UserPrincipal } from '../../services/index.js'

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
    request.principal = await fastify.services.auth.verifyAccess(token)
  }

  fastify.decorate('authenticate', authenticate)
  fastify.decorate('requireStaff', async (request: FastifyRequest) => {
    await authenticate(request)
    if (request.principal?.isStaff !== true) throw new Errors.STAFF_ONLY()
  })
}, { name: 'auth-guard', dependencies: ['services'] })
