// Every REST route of the control plane.
import type { FastifyPluginAsync } from 'fastify'
import apiKeys from './routes/api-keys.js'
import ops from './routes/ops.js'
import robots from './routes/robots/index.js'
import users from './routes/users.js'

const http: FastifyPluginAsync = async (fastify) => {
  await fastify.register(ops)
  await fastify.register(users)
  await fastify.register(apiKeys)
  await fastify.register(robots)
}

export default http
