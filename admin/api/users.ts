// Management API, users (docs/protocol.md §8): staff JWT; every change is audited.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { auditContext } from '../../src/http/plugins/auth-guard.js'
import { BearerSecurity, errorResponses, NoContent, PageQuery, PageSchema } from '../../src/http/schemas/common.js'
import { NewUserBody, UserIdParams, UserPatchBody, UserSchema } from '../../src/http/schemas/users.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { users } = fastify.services
  fastify.addHook('onRequest', fastify.requireStaff)
  const common = { tags: ['management'], security: BearerSecurity }

  fastify.post('/users', {
    schema: { ...common, summary: 'Create a user', body: NewUserBody, response: { 201: UserSchema, ...errorResponses(400, 401, 403, 409) } }
  }, async (request, reply) => {
    const { username, password, is_staff: isStaff } = request.body
    return await reply.code(201).send(await users.create({ username, password, isStaff }, auditContext(request)))
  })

  fastify.get('/users', {
    schema: { ...common, summary: 'List users', querystring: PageQuery, response: { 200: PageSchema(UserSchema), ...errorResponses(400, 401, 403) } }
  }, async (request) => await users.list(request.query))

  fastify.get('/users/:id', {
    schema: { ...common, summary: 'One user', params: UserIdParams, response: { 200: UserSchema, ...errorResponses(400, 401, 403, 404) } }
  }, async (request) => await users.get(request.params.id))

  fastify.patch('/users/:id', {
    schema: { ...common, summary: 'Change password, staff or active flag', params: UserIdParams, body: UserPatchBody, response: { 200: UserSchema, ...errorResponses(400, 401, 403, 404) } }
  }, async (request) => {
    const { password, is_staff: isStaff, is_active: isActive } = request.body
    return await users.update(request.params.id, { password, isStaff, isActive }, auditContext(request))
  })

  fastify.delete('/users/:id', {
    schema: { ...common, summary: 'Delete a user', params: UserIdParams, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } }
  }, async (request, reply) => {
    await users.remove(request.params.id, auditContext(request))
    return await reply.code(204).send(null)
  })
}

export default routes
