// POST /robots/robot/command, GET /robots/{uuid}/commands (docs/protocol.md §5) and
// POST /robots/{uuid}/commands/{id}/cancel (docs/protocol.md §5.4).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { auditContext } from '../../plugins/auth-guard.js'
import { BearerSecurity, errorResponses, PageQuery, PageSchema, RobotUuidParams } from '../../schemas/common.js'
import { CommandBody, CommandCreatedSchema, CommandParams, CommandSchema } from '../../schemas/robots.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { commands } = fastify.services

  fastify.post('/robots/robot/command', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: 'Send a command (a mode, or a command of the robot\'s model with its params); published QoS 1 on robots/{uuid}/commands, or queued with a ttl',
      description: '`command` is a mode (auto, idle, error, manual: no `params`) or a command of the robot\'s model, whose `params` must match its schema (docs/protocol.md §14.3): ' +
        'anything else is 400 `UNITED_UNKNOWN_COMMAND` or `UNITED_INVALID_PARAMS` (naming the field), after the robot\'s access check and before anything is stored. ' +
        'A robot that is not command-connected holds at most COMMAND_QUEUE_LIMIT (default 100) queued commands: one more answers 429 `UNITED_QUEUE_FULL`. ' +
        'A queue goes out oldest first, at most 10 commands unacknowledged (no PUBACK yet) at a time. ' +
        'A queued command whose issuer may no longer command the robot (grant revoked, staff flag removed, user deactivated or deleted) becomes `cancelled`.',
      security: BearerSecurity,
      body: CommandBody,
      response: { 201: CommandCreatedSchema, ...errorResponses(400, 401, 403, 404, 409, 429) }
    }
  }, async (request, reply) => {
    const { robot_uuid: uuid, command, ttl, params } = request.body
    const created = await commands.issue(request.principal!, uuid.toLowerCase(), command, auditContext(request), ttl, params)
    return await reply.code(201).send(created)
  })

  fastify.get('/robots/:uuid/commands', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: "A robot's commands, newest first",
      security: BearerSecurity,
      params: RobotUuidParams,
      querystring: PageQuery,
      response: { 200: PageSchema(CommandSchema), ...errorResponses(400, 401, 404) }
    }
  }, async (request) => {
    return await commands.list(request.principal!, request.params.uuid.toLowerCase(), request.query)
  })

  fastify.post('/robots/:uuid/commands/:id/cancel', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: 'Cancel a queued or pending command (a later ack of it is ignored); 409 UNITED_COMMAND_FINISHED past that',
      security: BearerSecurity,
      params: CommandParams,
      response: { 200: CommandSchema, ...errorResponses(400, 401, 403, 404, 409) }
    }
  }, async (request) => {
    return await commands.cancel(request.principal!, request.params.uuid.toLowerCase(), request.params.id, auditContext(request))
  })
}

export default routes
