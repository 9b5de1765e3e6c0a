// Management API, audit log: newest first, filtered by robot, user and action.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BearerSecurity, DateTime, errorResponses, PageSchema, RobotUuid } from '../../src/http/schemas/common.js'

const AuditEventSchema = Type.Object({
  id: Type.Integer(),
  at: DateTime,
  actor_id: Type.Union([Type.Integer(), Type.Null()]),
  actor: Type.Union([Type.String(), Type.Null()]),
  action: Type.String(),
  robot_uuid: Type.Union([Type.String(), Type.Null()]),
  target_user_id: Type.Union([Type.Integer(), Type.Null()]),
  details: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  ip: Type.Union([Type.String(), Type.Null()])
})

const AuditQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  robot_uuid: Type.Optional(RobotUuid),
  user_id: Type.Optional(Type.Integer({ minimum: 1, description: 'matches the actor or the target user' })),
  action: Type.Optional(Type.String({ maxLength: 64 }))
}, { additionalProperties: false })

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.addHook('onRequest', fastify.requireStaff)
  fastify.get('/audit', {
    schema: {
      tags: ['management'],
      security: BearerSecurity,
      summary: 'The audit log, newest first',
      querystring: AuditQuery,
      response: { 200: PageSchema(AuditEventSchema), ...errorResponses(400, 401, 403) }
    }
  }, async (request) => {
    const { robot_uuid: robotUuid, user_id: userId, ...page } = request.query
    return await fastify.services.audit.list({ ...page, robotUuid: robotUuid?.toLowerCase(), userId })
  })
}

export default routes
