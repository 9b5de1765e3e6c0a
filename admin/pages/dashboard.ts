// GET /admin: the fleet at a glance (robots, online now, users, frames in the
// last hour, commands by status).
import type { FastifyPluginAsync } from 'fastify'
import { render } from '../render.js'

const dashboard: FastifyPluginAsync = async (fastify) => {
  fastify.get('/', async (request, reply) => {
    const overview = await fastify.services.overview.get()
    return await render(request, reply, 'dashboard', { title: 'Dashboard', overview })
  })
}

export default dashboard
