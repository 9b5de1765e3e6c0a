// Management API, robot models (docs/protocol.md §14.1): staff JWT; versions are
// immutable, so there is create (the next version), read and delete.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { auditContext } from '../../src/http/plugins/auth-guard.js'
import { BearerSecurity, errorResponses, NoContent } from '../../src/http/schemas/common.js'
import { ModelBody, ModelListItem, ModelSchema, ModelVersionParams } from '../../src/http/schemas/models.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { models } = fastify.services
  fastify.addHook('onRequest', fastify.requireStaff)
  const common = { tags: ['management'], security: BearerSecurity }

  fastify.post('/models', {
    schema: {
      ...common,
      summary: 'Create a model, or the next version of one',
      description: 'The first post of a name creates version 1, each later post the next version. A version never changes. Every mistake is named in the 400.',
      body: ModelBody,
      response: { 201: ModelSchema, ...errorResponses(400, 401, 403) }
    },
    // The body is documented by ModelBody but checked by the model service,
    // whose errors name each mistake (the path, the keyword, the limit).
    validatorCompiler: () => () => true
  }, async (request, reply) => await reply.code(201).send(await models.create(request.body, auditContext(request))))

  fastify.get('/models', {
    schema: { ...common, summary: 'The models: the latest version of each, with the numbers of its versions', response: { 200: Type.Object({ items: Type.Array(ModelListItem) }), ...errorResponses(401, 403) } }
  }, async () => ({ items: await models.list() }))

  fastify.get('/models/:name/versions/:version', {
    schema: { ...common, summary: 'One model version', params: ModelVersionParams, response: { 200: ModelSchema, ...errorResponses(400, 401, 403, 404) } }
  }, async (request) => await models.get(request.params.name, request.params.version))

  fastify.delete('/models/:name/versions/:version', {
    schema: { ...common, summary: 'Delete a model version no robot uses (its number is not given out again)', params: ModelVersionParams, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404, 409) } }
  }, async (request, reply) => {
    await models.remove(request.params.name, request.params.version, auditContext(request))
    return await reply.code(204).send(null)
  })
}

export default routes
