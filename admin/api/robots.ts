// Management API, robots and access grants (docs/protocol.md §8): staff JWT; every
// change is audited; disabling, deleting and rotating close connections.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { auditContext } from '../../src/http/plugins/auth-guard.js'
import { BearerSecurity, errorResponses, NoContent, PageSchema, RobotUuidParams } from '../../src/http/schemas/common.js'
import { AccessParams, AdminRobotSchema, GrantBody, GrantItem, grantInput, NewRobotBody, NewRobotSchema, RobotListQuery, RobotPatchBody, RotateTokenBody, RotateTokenSchema } from '../../src/http/schemas/robots.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { robots, access } = fastify.services
  fastify.addHook('onRequest', fastify.requireStaff)
  const common = { tags: ['management'], security: BearerSecurity }
  const uuidOf = (params: { uuid: string }): string => params.uuid.toLowerCase()

  fastify.post('/robots', {
    schema: { ...common, summary: 'Create a robot; the secret (`token`) is generated unless given, and shown only here', body: NewRobotBody, response: { 201: NewRobotSchema, ...errorResponses(400, 401, 403, 409) } }
  }, async (request, reply) => {
    return await reply.code(201).send(await robots.create(request.body, auditContext(request)))
  })

  fastify.get('/robots', {
    schema: { ...common, summary: 'List robots (`q` searches serial and name)', querystring: RobotListQuery, response: { 200: PageSchema(AdminRobotSchema), ...errorResponses(400, 401, 403) } }
  }, async (request) => await robots.list(request.query))

  fastify.get('/robots/:uuid', {
    schema: { ...common, summary: 'One robot', params: RobotUuidParams, response: { 200: AdminRobotSchema, ...errorResponses(400, 401, 403, 404) } }
  }, async (request) => await robots.get(uuidOf(request.params)))

  fastify.patch('/robots/:uuid', {
    schema: { ...common, summary: 'Change serial, name or enabled (disabling closes its connections)', params: RobotUuidParams, body: RobotPatchBody, response: { 200: AdminRobotSchema, ...errorResponses(400, 401, 403, 404, 409) } }
  }, async (request) => await robots.update(uuidOf(request.params), request.body, auditContext(request)))

  fastify.delete('/robots/:uuid', {
    schema: { ...common, summary: 'Delete a robot with its history', params: RobotUuidParams, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } }
  }, async (request, reply) => {
    await robots.remove(uuidOf(request.params), auditContext(request))
    return await reply.code(204).send(null)
  })

  fastify.post('/robots/:uuid/rotate_token', {
    schema: {
      ...common,
      summary: 'Replace the secret (shown once); without `grace_seconds`, voids its tokens and closes its connections',
      description: 'The body is optional. With `grace_seconds` N > 0 the previous secret keeps working at obtain_token for N seconds and the robot stays connected; only one previous secret is kept, so a second rotation ends the older one at once.',
      params: RobotUuidParams,
      body: RotateTokenBody,
      response: { 200: RotateTokenSchema, ...errorResponses(400, 401, 403, 404) }
    },
    // No body at all is a rotation with 0, as ever (docs/protocol.md §2.4). Only an
    // absent body: `null`, `[]` or a string still fail validation.
    preValidation: async (request) => { if (request.body === undefined) request.body = {} }
  }, async (request) => {
    const { token } = await robots.rotate(uuidOf(request.params), auditContext(request), request.body.grace_seconds ?? 0)
    return { token }
  })

  fastify.get('/robots/:uuid/users', {
    schema: { ...common, summary: "The robot's direct grants (unexpired), with role and expiry", params: RobotUuidParams, response: { 200: Type.Object({ items: Type.Array(GrantItem) }), ...errorResponses(400, 401, 403, 404) } }
  }, async (request) => ({ items: await access.grantsOf(uuidOf(request.params)) }))

  fastify.put('/robots/:uuid/users/:user_id', {
    schema: {
      ...common,
      summary: 'Grant a user a role on the robot (default operator), optionally until `expires_at`; a second PUT replaces role and expiry',
      params: AccessParams,
      body: GrantBody,
      response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) }
    },
    // No body: an operator grant for good.
    preValidation: async (request) => { if (request.body === undefined || request.body === null) request.body = {} }
  }, async (request, reply) => {
    await access.grant(request.params.user_id, uuidOf(request.params), grantInput(request.body), auditContext(request))
    return await reply.code(204).send(null)
  })

  fastify.delete('/robots/:uuid/users/:user_id', {
    schema: { ...common, summary: "Revoke a user's access to the robot", params: AccessParams, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } }
  }, async (request, reply) => {
    await access.revoke(request.params.user_id, uuidOf(request.params), auditContext(request))
    return await reply.code(204).send(null)
  })
}

export default routes
