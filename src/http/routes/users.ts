// /users/obtain_token/, /users/refresh_token/, /users/me (docs/protocol.md §2.1).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { loginLimits } from '../plugins/login-limits.js'
import { BearerSecurity, errorResponses } from '../schemas/common.js'
import { AccessTokenSchema, MeSchema, ObtainTokenBody, RefreshBody, TokenPairSchema } from '../schemas/users.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { auth, users } = fastify.services
  const limits = loginLimits(fastify, 'user')

  fastify.post('/users/obtain_token/', {
    onRequest: limits.onRequest,
    schema: {
      tags: ['users'],
      summary: 'Log in: username and password (JSON or form) → access and refresh JWTs',
      description: 'The username matches without regard to case; the tokens and answers carry its stored spelling. ' +
        '401 UNITED_INVALID_CREDENTIALS: wrong credentials. 401 UNITED_CREDENTIAL_REVOKED: the right password of an inactive user; not a failed log-in. ' +
        '429: too many failed log-ins from this address (Retry-After). ' +
        '503 UNITED_DATABASE_UNAVAILABLE (Retry-After): the database could not check the credentials; not a failed log-in. ' +
        '503 UNITED_BUSY (Retry-After): too many password checks waiting.',
      body: ObtainTokenBody,
      response: { 200: TokenPairSchema, ...errorResponses(400, 401, 429, 503) }
    }
  }, async (request) => {
    const { username, password } = request.body
    return await limits.counted(request, username, () => auth.login(username, password, { ip: request.ip }))
  })

  fastify.post('/users/refresh_token/', {
    schema: {
      tags: ['users'],
      summary: 'A new access JWT for a refresh JWT',
      description: '503 UNITED_DATABASE_UNAVAILABLE (Retry-After): the database could not check the token; it may be valid.',
      body: RefreshBody,
      response: { 200: AccessTokenSchema, ...errorResponses(400, 401, 503) }
    }
  }, async (request) => {
    return await auth.refresh(request.body.refresh)
  })

  fastify.get('/users/me', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['users'],
      summary: 'The logged-in user and the robots they can access',
      security: BearerSecurity,
      response: { 200: MeSchema, ...errorResponses(401, 503) }
    }
  }, async (request) => {
    const me = request.principal!
    return { id: me.id, username: me.username, is_staff: me.isStaff, robots: await fastify.services.access.visibleUuids(me.id) }
  })
}

export default routes
