// Managers manage a robot's direct grants (docs/protocol.md §13.3):
// GET /robots/{uuid}/grants, PUT and DELETE /robots/{uuid}/grants/{username}.
// Only for the robot's managers (403 UNITED_ROLE_REQUIRED for operators and
// viewers, 404 without a role), and only on active non-staff users (a staff
// or unknown username is 404). Group grants are staff business.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { auditContext } from '../../plugins/auth-guard.js'
import { BearerSecurity, errorResponses, NoContent, PageQuery, PageSchema, RobotUuidParams } from '../../schemas/common.js'
import { GrantBody, grantInput, ManagedGrantItem, ManagedGrantParams } from '../../schemas/robots.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { access } = fastify.services
  const common = { tags: ['robots'], security: BearerSecurity }

  fastify.get('/robots/:uuid/grants', {
    onRequest: fastify.authenticate,
    schema: { ...common, summary: "The robot's direct grants (managers)", params: RobotUuidParams, querystring: PageQuery, response: { 200: PageSchema(ManagedGrantItem), ...errorResponses(400, 401, 403, 404) } }
  }, async (request) => await access.managerList(request.principal!, request.params.uuid.toLowerCase(), request.query))

  fastify.put('/robots/:uuid/grants/:username', {
    onRequest: fastify.authenticate,
    schema: { ...common, summary: 'Grant an active non-staff user a role on the robot (managers); a second PUT replaces role and expiry', params: ManagedGrantParams, body: GrantBody, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } },
    preValidation: async (request) => { if (request.body === undefined || request.body === null) request.body = {} }
  }, async (request, reply) => {
    await access.managerPut(request.principal!, request.params.uuid.toLowerCase(), request.params.username, grantInput(request.body), auditContext(request))
    return await reply.code(204).send(null)
  })

  fastify.delete('/robots/:uuid/grants/:username', {
    onRequest: fastify.authenticate,
    schema: { ...common, summary: "Remove a user's direct grant on the robot (managers)", params: ManagedGrantParams, response: { 204: NoContent, ...errorResponses(400, 401, 403, 404) } }
  }, async (request, reply) => {
    await access.managerDelete(request.principal!, request.params.uuid.toLowerCase(), request.params.username, auditContext(request))
    return await reply.code(204).send(null)
  })
}

export default routes
