// POST /robots/robot/obtain_token (docs/protocol.md §2.2): serial + secret → MQTT access token.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { loginLimits } from '../../plugins/login-limits.js'
import { errorResponses } from '../../schemas/common.js'
import { RobotAccessTokenSchema, RobotObtainTokenBody } from '../../schemas/robots.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const limits = loginLimits(fastify, 'robot')
  fastify.post('/robots/robot/obtain_token', {
    onRequest: limits.onRequest,
    schema: {
      tags: ['robots'],
      summary: 'Robot log-in: serial and secret (JSON or form) → a cached MQTT access token',
      description: '401 UNITED_ROBOT_AUTH_FAILED: wrong serial or secret (a disabled robot\'s included). ' +
        '401 UNITED_CREDENTIAL_REVOKED: the right secret of a disabled robot, or a rotated-out secret whose grace period ended less than 7 days ago; not a failed log-in. ' +
        '429: too many failed log-ins from this address (Retry-After). ' +
        '503 UNITED_DATABASE_UNAVAILABLE (Retry-After): the database could not check the secret; not a failed log-in.',
      body: RobotObtainTokenBody,
      response: { 201: RobotAccessTokenSchema, ...errorResponses(400, 401, 429, 503) }
    }
  }, async (request, reply) => {
    const { serial, token: secret } = request.body
    const token = await limits.counted(request, serial, () => fastify.services.robotTokens.obtain(serial, secret))
    return await reply.code(201).send(token)
  })
}

export default routes
