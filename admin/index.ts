// The admin area, encapsulated under /admin (docs/admin.md and docs/protocol.md §8): the staff
// Management API (JSON, staff JWT) and the server-rendered pages (session
// cookie, CSRF). Each is its own context, so the cookie, CSRF and view
// machinery of the pages never touches the API, and nothing leaks to the rest.
import type { FastifyPluginAsync } from 'fastify'
import audit from './api/audit.js'
import cluster from './api/cluster.js'
import groups from './api/groups.js'
import models from './api/models.js'
import robots from './api/robots.js'
import users from './api/users.js'
import site from './site.js'

const admin: FastifyPluginAsync = async (fastify) => {
  await fastify.register(async (api) => {
    await api.register(users)
    await api.register(robots)
    await api.register(groups)
    await api.register(models)
    await api.register(audit)
    await api.register(cluster)
  }, { prefix: '/api' })
  await fastify.register(site)
}

export default admin
