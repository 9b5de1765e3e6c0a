// GET /robots/{uuid}/frames (CONTRACT §6): stored frames, newest first, keyset-paginated.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BearerSecurity, errorResponses, PageSchema, RobotUuidParams } from '../../schemas/common.js'
import { FrameQuery, FrameSchema } from '../../schemas/robots.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/robots/:uuid/frames', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: "A robot's stored data frames, newest first by time received",
      security: BearerSecurity,
      params: RobotUuidParams,
      querystring: FrameQuery,
      response: { 200: PageSchema(FrameSchema), ...errorResponses(400, 401, 404) }
    }
  }, async (request) => {
    const { from, to, ...rest } = request.query
    return await fastify.services.frames.list(request.principal!, request.params.uuid.toLowerCase(), {
      ...rest,
      from: from === undefined ? undefined : new Date(from),
      to: to === undefined ? undefined : new Date(to)
    })
  })
}

export default routes
