// GET /admin/audit: what users and admins did, newest first, filtered by
// robot (uuid or serial), user (username: as actor or as target) and action.
import type { FastifyPluginAsync } from 'fastify'
import { UUID_PATTERN } from '../../src/http/schemas/common.js'
import type { AuditAction, AuditFilter } from '../../src/services/audit.js'
import { render } from '../render.js'
import { PAGE_SIZE } from './robots.js'

export const ACTIONS: AuditAction[] = [
  'user.login', 'user.login_failed', 'user.created', 'user.updated', 'user.deleted',
  'robot.created', 'robot.updated', 'robot.deleted', 'robot.token_rotated',
  'access.granted', 'access.changed', 'access.revoked', 'access.expired',
  'group.created', 'group.deleted', 'group.robot_added', 'group.robot_removed',
  'group.granted', 'group.grant_changed', 'group.revoked',
  'api_key.created', 'api_key.deleted', 'model.created', 'model.deleted',
  'command.sent', 'robot.login_failed', 'auth.login_blocked'
]
const uuidRe = new RegExp(UUID_PATTERN)

const audit: FastifyPluginAsync = async (fastify) => {
  const { audit, robots, users } = fastify.services

  fastify.get('/audit', async (request, reply) => {
    const q = request.query as Record<string, unknown>
    const str = (k: string): string => typeof q[k] === 'string' ? (q[k] as string).trim().slice(0, 150) : ''
    const filters = { robot: str('robot'), user: str('user'), action: str('action'), cursor: str('cursor') }
    const filter: AuditFilter = { limit: PAGE_SIZE }
    // A filter that names nobody matches nothing (not everything).
    let nobody = false
    if (filters.robot !== '') {
      if (uuidRe.test(filters.robot)) filter.robotUuid = filters.robot.toLowerCase()
      else {
        const robot = await robots.findBySerial(filters.robot)
        if (robot === null) nobody = true
        else filter.robotUuid = robot.uuid
      }
    }
    if (filters.user !== '') {
      const user = await users.findByUsername(filters.user)
      if (user === null) nobody = true
      else filter.userId = user.id
    }
    if (filters.action !== '') {
      if ((ACTIONS as string[]).includes(filters.action)) filter.action = filters.action
      else nobody = true
    }
    if (filters.cursor !== '') filter.cursor = filters.cursor
    const page = nobody ? { items: [], next_cursor: null } : await audit.list(filter)
    return await render(request, reply, 'audit', { title: 'Audit log', page, filters, actions: ACTIONS })
  })
}

export default audit
