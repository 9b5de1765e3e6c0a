// The admin area, encapsulated under /admin (CONTRACT §8). For now the staff
// Management API; the server-rendered pages join it here.
import type { FastifyPluginAsync } from 'fastify'
import audit from './api/audit.js'
import robots from './api/robots.js'
import users from './api/users.js'

const admin: FastifyPluginAsync = async (fastify) => {
  await fastify.register(users, { prefix: '/api' })
  await fastify.register(robots, { prefix: '/api' })
  await fastify.register(audit, { prefix: '/api' })
}

export default admin
