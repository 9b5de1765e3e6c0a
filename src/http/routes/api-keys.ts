// /users/me/api_keys (docs/protocol.md §13.4): a user's API keys.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { auditContext } from '../plugins/auth-guard.js'
import { ApiKeyIdParams, ApiKeyList, NewApiKeyBody, NewApiKeySchema } from '../schemas/api-keys.js'
import { BearerSecurity, errorResponses, NoContent } from '../schemas/common.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { apiKeys } = fastify.services

  fastify.post('/users/me/api_keys', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['users'],
      summary: 'Create an API key: it acts as you on REST and MQTT until deleted, expired, or your password changes',
      description: 'The key is shown only in this answer. At most 20 live keys per user (409 UNITED_TOO_MANY_API_KEYS). ' +
        '403 UNITED_API_KEY_FORBIDDEN: authenticated by an API key (log in with a password to make keys). 400: an expires_at in the past.',
      security: BearerSecurity,
      body: NewApiKeyBody,
      response: { 201: NewApiKeySchema, ...errorResponses(400, 401, 403, 409, 503) }
    }
  }, async (request, reply) => {
    const { name, expires_at: expires } = request.body
    const made = await apiKeys.create(request.principal!, { name, expiresAt: expires === undefined || expires === null ? null : new Date(expires) }, auditContext(request))
    return await reply.code(201).send(made)
  })

  fastify.get('/users/me/api_keys', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['users'],
      summary: 'Your live API keys, oldest first (without the keys themselves)',
      security: BearerSecurity,
      response: { 200: ApiKeyList, ...errorResponses(401, 503) }
    }
  }, async (request) => {
    return { items: await apiKeys.list(request.principal!) }
  })

  fastify.delete('/users/me/api_keys/:id', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['users'],
      summary: 'Delete one of your API keys: it stops working at once, and its MQTT connections close',
      description: '404 UNITED_API_KEY_NOT_FOUND: not one of your keys, or already deleted.',
      security: BearerSecurity,
      params: ApiKeyIdParams,
      response: { 204: NoContent, ...errorResponses(400, 401, 404, 503) }
    }
  }, async (request, reply) => {
    await apiKeys.remove(request.principal!, request.params.id.toLowerCase(), auditContext(request))
    return await reply.code(204).send(null)
  })
}

export default routes
