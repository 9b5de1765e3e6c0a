// POST /robots/robot/obtain_token (CONTRACT §2): serial + secret → MQTT access token.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errorResponses } from '../../schemas/common.js'
import { RobotAccessTokenSchema, RobotObtainTokenBody } from '../../schemas/robots.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post('/robots/robot/obtain_token', {
    schema: {
      tags: ['robots'],
      summary: 'Robot log-in: serial and secret (JSON or form) → a cached MQTT access token',
      body: RobotObtainTokenBody,
      response: { 201: RobotAccessTokenSchema, ...errorResponses(400, 401) }
    }
  }, async (request, reply) => {
    const token = await fastify.services.robotTokens.obtain(request.body.serial, request.body.token)
    return await reply.code(201).send(token)
  })
}

export default routes
