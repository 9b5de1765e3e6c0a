// GET /robots/{uuid}/frames (CONTRACT §6): stored frames, newest first,
// keyset-paginated; GET /robots/{uuid}/frames/aggregate (§11): time buckets.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BearerSecurity, errorResponses, PageSchema, RobotUuidParams } from '../../schemas/common.js'
import { AggregateQuery, AggregateSchema, FrameQuery, FrameSchema } from '../../schemas/robots.js'

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

  fastify.get('/robots/:uuid/frames/aggregate', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: "Min, max and average of a robot's stored frames per time bucket, oldest first (only buckets with frames)",
      security: BearerSecurity,
      params: RobotUuidParams,
      querystring: AggregateQuery,
      response: { 200: AggregateSchema, ...errorResponses(400, 401, 404) }
    }
  }, async (request) => {
    const { type, from, to, bucket } = request.query
    return await fastify.services.frames.aggregate(request.principal!, request.params.uuid.toLowerCase(), { type, bucket, from: new Date(from), to: new Date(to) })
  })
}

export default routes
