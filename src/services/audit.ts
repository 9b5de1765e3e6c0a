// The audit log (docs/protocol.md §8): what users and admins did to robots and users.
// Writers pass their transaction so that a change and its record commit together.
import { Op, type Transaction, type WhereOptions } from 'sequelize'
import type { Database } from '../db/index.js'
import type { AuditEvent } from '../db/models/index.js'
import { decodeCursor, pageLimit, toPage, type Page, type PageRequest } from './pagination.js'

/** Who did it, from where. `null` actor = the system (e.g. the CLI). */
export interface Actor { id: number, username: string }
export interface AuditContext { actor: Actor | null, ip?: string }

export type AuditAction =
  | 'user.login' | 'user.login_failed' | 'user.created' | 'user.updated' | 'user.deleted'
  | 'robot.login_failed' | 'auth.login_blocked'
  | 'robot.created' | 'robot.updated' | 'robot.deleted' | 'robot.token_rotated'
  | 'access.granted' | 'access.changed' | 'access.revoked' | 'access.expired'
  | 'group.created' | 'group.deleted' | 'group.robot_added' | 'group.robot_removed' | 'group.granted' | 'group.grant_changed' | 'group.revoked'
  | 'api_key.created' | 'api_key.deleted'
  | 'model.created' | 'model.deleted'
  | 'command.sent' | 'command.queued' | 'command.cancelled'

export interface AuditEntry {
  action: AuditAction
  robotUuid?: string
  targetUserId?: number
  details?: Record<string, unknown>
}

export interface AuditView {
  id: number
  at: string
  actor_id: number | null
  actor: string | null
  action: string
  robot_uuid: string | null
  target_user_id: number | null
  details: Record<string, unknown> | null
  ip: string | null
}

export interface AuditFilter extends PageRequest { robotUuid?: string, actorId?: number, userId?: number, action?: string }

/** The columns of one audit record (also written by statements of other services, e.g. a command's). */
function row (ctx: AuditContext, entry: AuditEntry, at = new Date()) {
  return {
    at,
    actorId: ctx.actor?.id ?? null,
    actor: ctx.actor?.username ?? null,
    action: entry.action,
    robotUuid: entry.robotUuid ?? null,
    targetUserId: entry.targetUserId ?? null,
    details: entry.details ?? null,
    ip: ctx.ip ?? null
  }
}

export function createAuditService ({ db }: { db: Database }) {
  const { AuditEvent } = db.models

  function view (row: AuditEvent): AuditView {
    return {
      id: Number(row.id),
      at: row.at.toISOString(),
      actor_id: row.actorId,
      actor: row.actor,
      action: row.action,
      robot_uuid: row.robotUuid,
      target_user_id: row.targetUserId,
      details: row.details,
      ip: row.ip
    }
  }

  return {
    row,

    async record (ctx: AuditContext, entry: AuditEntry, transaction?: Transaction): Promise<void> {
      await AuditEvent.create(row(ctx, entry), { transaction })
    },

    /** Newest first. `userId` matches the actor or the target user. */
    async list (filter: AuditFilter = {}): Promise<Page<AuditView>> {
      const limit = pageLimit(filter.limit)
      const where: WhereOptions[] = []
      if (filter.robotUuid !== undefined) where.push({ robotUuid: filter.robotUuid })
      if (filter.actorId !== undefined) where.push({ actorId: filter.actorId })
      if (filter.userId !== undefined) where.push({ [Op.or]: [{ actorId: filter.userId }, { targetUserId: filter.userId }] })
      if (filter.action !== undefined) where.push({ action: filter.action })
      if (filter.cursor !== undefined) {
        const [id] = decodeCursor(filter.cursor, ['number'])
        where.push({ id: { [Op.lt]: id } })
      }
      const rows = await AuditEvent.findAll({ where: { [Op.and]: where }, order: [['id', 'DESC']], limit: limit + 1 })
      return toPage(rows, limit, view, (row) => [Number(row.id)])
    }
  }
}

export type AuditService = ReturnType<typeof createAuditService>
