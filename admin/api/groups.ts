// Management API, groups of robots (docs/protocol.md §13.2): staff JWT; every
// change is audited and reaches open MQTT subscriptions on every node.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { auditContext } from '../../src/http/plugins/auth-guard.js'
import { BearerSecurity, errorResponses, NoContent } from '../../src/http/schemas/common.js'
import { GrantBody, grantInput, GroupDetailSchema, GroupParams, GroupRobotParams, GroupSchema, GroupUserParams, NewGroupBody } from '../../src/http/schemas/robots.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { groups } = fastify.services
  fastify.addHook('onRequest', fastify.requireStaff)
  const common = { tags: ['management'], security: BearerSecurity }

  fastify.post('/groups', {
    schema: { ...common, summary: 'Create a group of robots', body: NewGroupBody, response: { 201: GroupSchema, ...errorResponses(400, 401, 403, 409) } }
  }, async (request, reply) => await reply.code(201).send(await groups.create(request.body.name, auditContext(request))))

  fastify.get('/groups', {
    schema: { ...common, summary: 'The groups', response: { 200: Type.Object({ items: Type.Array(GroupSchema) }), ...errorResponses(401, 403) } }
  }, async () => ({ items: await groups.list() }))

  fastify.get('/groups/:id', {
    schema: { ...common, summary: 'One group with its robots and its users (unexpired grants)', params: GroupParams, response: { 200: GroupDetailSchema, ...errorResponses(400, 401, 403, 404) } }
  }, async (request) => await groups.get(request.params.id))

  fastify.delete('/groups/:id', {
    schema: { ...common, summary: 'Delete a group with its grants (its robots stay)', params: GroupParams, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } }
  }, async (request, reply) => {
    await groups.remove(request.params.id, auditContext(request))
    return await reply.code(204).send(null)
  })

  fastify.put('/groups/:id/robots/:uuid', {
    schema: { ...common, summary: 'Put a robot in the group (a robot may be in several)', params: GroupRobotParams, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } }
  }, async (request, reply) => {
    await groups.addRobot(request.params.id, request.params.uuid.toLowerCase(), auditContext(request))
    return await reply.code(204).send(null)
  })

  fastify.delete('/groups/:id/robots/:uuid', {
    schema: { ...common, summary: 'Take a robot out of the group', params: GroupRobotParams, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } }
  }, async (request, reply) => {
    await groups.removeRobot(request.params.id, request.params.uuid.toLowerCase(), auditContext(request))
    return await reply.code(204).send(null)
  })

  fastify.put('/groups/:id/users/:user_id', {
    schema: { ...common, summary: 'Grant a user a role on every robot of the group (default operator), optionally until `expires_at`', params: GroupUserParams, body: GrantBody, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } },
    preValidation: async (request) => { if (request.body === undefined || request.body === null) request.body = {} }
  }, async (request, reply) => {
    await groups.grant(request.params.id, request.params.user_id, grantInput(request.body), auditContext(request))
    return await reply.code(204).send(null)
  })

  fastify.delete('/groups/:id/users/:user_id', {
    schema: { ...common, summary: "Remove a user's grant on the group", params: GroupUserParams, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } }
  }, async (request, reply) => {
    await groups.revoke(request.params.id, request.params.user_id, auditContext(request))
    return await reply.code(204).send(null)
  })
}

export default routes
