// POST /robots/robot/command and GET /robots/{uuid}/commands (CONTRACT §5).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { auditContext } from '../../plugins/auth-guard.js'
import { BearerSecurity, errorResponses, PageQuery, PageSchema, RobotUuidParams } from '../../schemas/common.js'
import { CommandBody, CommandCreatedSchema, CommandSchema } from '../../schemas/robots.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { commands } = fastify.services

  fastify.post('/robots/robot/command', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: 'Send a command (state change); published QoS 1 on robots/{uuid}/commands',
      security: BearerSecurity,
      body: CommandBody,
      response: { 201: CommandCreatedSchema, ...errorResponses(400, 401, 404, 409) }
    }
  }, async (request, reply) => {
    const { robot_uuid: uuid, command } = request.body
    const created = await commands.issue(request.principal!, uuid.toLowerCase(), command, auditContext(request))
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
}

export default routes
