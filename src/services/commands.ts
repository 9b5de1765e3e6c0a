// Commands (CONTRACT §5, §12): stored as pending, published by the broker on
// `commandIssued`, then delivered (PUBACK) → done/failed (robot's ack) or
// expired after COMMAND_TIMEOUT. With a `ttl`, a command to a robot that is
// not command-connected is stored as queued instead of refused, released
// (oldest first) when the robot subscribes to its commands, and expired when
// it is still queued after `ttl`. Queued and pending commands can be
// cancelled. Every change of status is one UPDATE guarded by the status it
// leaves, so of two racing changes (a release and a cancel, an ack and a
// sweep) exactly one wins, on any number of nodes.
import { randomUUID } from 'node:crypto'
import { Op, QueryTypes } from 'sequelize'
import { dateParam, rawDate, sqliteDate, type Database } from '../db/index.js'
import type { Command } from '../db/models/index.js'
import type { CommandStatus, RobotCommand } from '../contract/payloads.js'
import { isUuid } from '../contract/uuid.js'
import { Errors } from '../errors.js'
import type { EventBus } from '../events.js'
import type { AccessService, UserPrincipal } from './access.js'
import type { AuditContext, AuditService } from './audit.js'
import { decodeCursor, olderThan, pageLimit, toPage, type Page, type PageRequest } from './pagination.js'
import type { PresenceService } from './presence.js'

export interface CommandView {
  id: string
  robot_uuid: string
  command: string
  status: CommandStatus
  issued_by: string
  created_at: string
  delivered_at: string | null
  acked_at: string | null
  /** CONTRACT §12: when a queued command expires; null once it is not queued. */
  expires_at: string | null
}

// PostgreSQL, the whole command path in one statement (atomic without
// BEGIN/COMMIT, one round trip): the robot, if this user may reach it by
// access.robotFor's rule ($13 = staff: every robot; else a grant), its command
// and the audit record. No row back: no such robot, or no grant (the same
// 404).
const PG_ISSUE = `WITH r AS (
  SELECT id FROM robots
  WHERE uuid = $2 AND ($13::boolean OR EXISTS (SELECT 1 FROM robot_access a WHERE a.robot_id = robots.id AND a.user_id = $5))
), c AS (
  INSERT INTO commands (id, robot_id, command, status, issued_by, issued_by_id, created_at, updated_at, expires_at, sent_at)
  SELECT $1, r.id, $3, $14, $4, $5, $6, $6, $15, $16 FROM r
  RETURNING id
), e AS (
  INSERT INTO audit_events (at, actor_id, actor, action, robot_uuid, target_user_id, details, ip)
  SELECT $6, $7, $8, $9, $2, $10, $11::jsonb, $12 FROM c
)
SELECT id FROM c`

// SQLite, the same check and the command in one INSERT (its audit record
// follows in the same transaction): no rows changed, no robot for this user.
const SQLITE_ISSUE = `INSERT INTO commands (id, robot_id, command, status, issued_by, issued_by_id, created_at, updated_at, expires_at, sent_at)
SELECT $1, r.id, $3, $8, $4, $5, $6, $6, $9, $10 FROM robots r
WHERE r.uuid = $2 AND ($7 OR EXISTS (SELECT 1 FROM robot_access a WHERE a.robot_id = r.id AND a.user_id = $5))`

// PostgreSQL, the robot's PUBACK: pending → delivered.
const PG_DELIVERED = `UPDATE commands SET status = 'delivered', delivered_at = $2, updated_at = $2
WHERE id = $1 AND status = 'pending'`

// PostgreSQL, the robot's acknowledgement in one statement: the command, if
// it is open and was sent to this robot, becomes done ($3 = 'done': the
// robot's state becomes the command) or failed. Guarded by its status, the
// UPDATE lets one acknowledgement win. No row back: nothing to acknowledge.
const PG_ACK = `WITH c AS (
  UPDATE commands SET status = $3, acked_at = $4, delivered_at = COALESCE(delivered_at, $4), message = COALESCE($5, message), updated_at = $4
  WHERE id = $1 AND status IN ('pending', 'delivered') AND robot_id = (SELECT id FROM robots WHERE uuid = $2)
  RETURNING robot_id, command
), r AS (
  UPDATE robots SET state = c.command, updated_at = $4 FROM c WHERE $3 = 'done' AND robots.id = c.robot_id
)
SELECT command FROM c`

// Both databases (SQLite ≥ 3.35 has RETURNING): a robot's queue, now pending,
// in one statement. A command cancelled or expired meanwhile is not in it.
const RELEASE = `UPDATE commands SET status = 'pending', sent_at = $2, updated_at = $2
WHERE status = 'queued' AND robot_id = (SELECT id FROM robots WHERE uuid = $1) AND expires_at > $2
RETURNING id, command, issued_by, created_at`

// Command ids are UUIDs, stored in lower case: anything else a robot sends
// names no command (and PostgreSQL would refuse it as a uuid); capitals name
// the same command on both databases.
function commandKey (id: string): string | null {
  const key = id.toLowerCase()
  return isUuid(key) ? key : null
}

const iso = (d: Date | null | undefined): string | null => d === null || d === undefined ? null : d.toISOString()
const OPEN: CommandStatus[] = ['pending', 'delivered']
const CANCELLABLE: CommandStatus[] = ['queued', 'pending']

export interface CommandServiceDeps {
  db: Database
  events: EventBus
  audit: AuditService
  access: AccessService
  presence: PresenceService
  timeoutSeconds: number
}

export function createCommandService ({ db, events, audit, access, presence, timeoutSeconds }: CommandServiceDeps) {
  const { AuditEvent, Command, Robot } = db.models

  function view (row: Command, robotUuid: string): CommandView {
    return {
      id: row.id,
      robot_uuid: robotUuid,
      command: row.command,
      status: row.status as CommandStatus,
      issued_by: row.issuedBy,
      created_at: row.createdAt.toISOString(),
      delivered_at: iso(row.deliveredAt),
      acked_at: iso(row.ackedAt),
      expires_at: row.status === 'queued' ? iso(row.expiresAt) : null
    }
  }

  // One release at a time per robot, so that two (a subscribe and a command
  // queued at the same moment) cannot publish a robot's queue out of order.
  const releasing = new Map<string, Promise<number>>()

  async function releaseNow (robotUuid: string): Promise<number> {
    const at = new Date()
    const bind = [robotUuid, dateParam(db.dialect, at)]
    const [rows] = await db.sequelize.query(RELEASE, { bind }) as unknown as [Array<{ id: string, command: string, issued_by: string, created_at: unknown }>]
    const released = rows.map((r) => ({ ...r, createdAt: rawDate(r.created_at) }))
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : 1))
    for (const r of released) events.emit('commandIssued', { id: r.id, robotUuid, command: r.command, issuedBy: r.issued_by, issuedAt: r.createdAt.toISOString() })
    return released.length
  }

  /**
   * The robot is command-connected: its queued commands become pending and
   * are published, oldest first. Resolves with how many.
   */
  async function releaseQueued (robotUuid: string): Promise<number> {
    const previous = releasing.get(robotUuid) ?? Promise.resolve(0)
    const next = previous.catch(() => 0).then(async () => await releaseNow(robotUuid))
    releasing.set(robotUuid, next)
    try {
      return await next
    } finally {
      if (releasing.get(robotUuid) === next) releasing.delete(robotUuid)
    }
  }

  return {
    /**
     * CONTRACT §5 and §12: pending and published when the robot is
     * command-connected; else queued for `ttlSeconds` when given, else 409.
     */
    async issue (principal: UserPrincipal, robotUuid: string, command: RobotCommand, ctx: AuditContext, ttlSeconds?: number): Promise<CommandView> {
      const connected = await presence.isCommandConnected(robotUuid)
      if (!connected && ttlSeconds === undefined) {
        await access.robotFor(principal, robotUuid) // 404 first: a robot this user cannot reach is not "not connected"
        throw new Errors.ROBOT_NOT_CONNECTED()
      }
      const id = randomUUID()
      const at = new Date()
      const status: CommandStatus = connected ? 'pending' : 'queued'
      const expiresAt = connected ? null : new Date(at.getTime() + (ttlSeconds as number) * 1000)
      const sentAt = connected ? at : null
      const details: Record<string, unknown> = { command_id: id, command }
      if (!connected) details.ttl = ttlSeconds
      const record = audit.row(ctx, { action: connected ? 'command.sent' : 'command.queued', robotUuid, details }, at)
      if (db.dialect === 'postgres') {
        const created = await db.pgPrepared('united_command_issue', PG_ISSUE,
          [id, robotUuid, command, principal.username, principal.id, at, record.actorId, record.actor, record.action, record.targetUserId, JSON.stringify(record.details), record.ip, principal.isStaff, status, expiresAt, sentAt])
        if (created.rowCount === 0) throw new Errors.ROBOT_NOT_FOUND()
      } else {
        const created = await db.transaction(async (transaction) => {
          const [, changes] = await db.sequelize.query(SQLITE_ISSUE, {
            type: QueryTypes.INSERT,
            transaction,
            bind: [id, robotUuid, command, principal.username, principal.id, sqliteDate(at), principal.isStaff ? 1 : 0, status, sqliteDate(expiresAt), sqliteDate(sentAt)]
          }) as unknown as [unknown, number]
          if (changes === 0) return false
          await AuditEvent.create(record, { transaction })
          return true
        })
        if (!created) throw new Errors.ROBOT_NOT_FOUND()
      }
      const result: CommandView = { id, robot_uuid: robotUuid, command, status, issued_by: principal.username, created_at: at.toISOString(), delivered_at: null, acked_at: null, expires_at: iso(expiresAt) }
      if (connected) {
        events.emit('commandIssued', { id, robotUuid, command, issuedBy: principal.username, issuedAt: result.created_at })
      } else if (await presence.isCommandConnected(robotUuid)) {
        // The robot subscribed while this was being stored: its release may
        // have run before the row existed. Release again (a no-op if not).
        await releaseQueued(robotUuid)
      }
      return result
    },

    releaseQueued,

    /**
     * CONTRACT §12: a queued or pending command becomes cancelled (a later ack
     * of it is ignored); 409 when it was past that, 404 when there is no such
     * command of a robot this user may reach.
     */
    async cancel (principal: UserPrincipal, robotUuid: string, anyId: string, ctx: AuditContext): Promise<CommandView> {
      const robot = await access.robotFor(principal, robotUuid)
      const commandId = commandKey(anyId)
      if (commandId === null) throw new Errors.COMMAND_NOT_FOUND()
      const at = new Date()
      const cancelled = await db.transaction(async (transaction) => {
        const before = await Command.findOne({ where: { id: commandId, robotId: robot.id }, attributes: ['status'], transaction })
        if (before === null) return null
        const [changes] = await Command.update({ status: 'cancelled' }, { where: { id: commandId, robotId: robot.id, status: { [Op.in]: CANCELLABLE } }, transaction })
        if (changes === 0) return false
        await AuditEvent.create(audit.row(ctx, { action: 'command.cancelled', robotUuid: robot.uuid, details: { command_id: commandId, was: before.status } }, at), { transaction })
        return true
      })
      if (cancelled === null) throw new Errors.COMMAND_NOT_FOUND()
      if (cancelled === false) throw new Errors.COMMAND_FINISHED()
      const row = await Command.findByPk(commandId) as Command
      return view(row, robot.uuid)
    },

    /** Newest first. */
    async list (principal: UserPrincipal, robotUuid: string, page: PageRequest = {}): Promise<Page<CommandView>> {
      const robot = await access.robotFor(principal, robotUuid)
      const limit = pageLimit(page.limit)
      const where: Record<string | symbol, unknown>[] = [{ robotId: robot.id }]
      if (page.cursor !== undefined) {
        const [at, id] = decodeCursor(page.cursor, ['date', 'string']) as [string, string]
        where.push(...olderThan('createdAt', new Date(at), 'id', id))
      }
      const rows = await Command.findAll({ where: { [Op.and]: where }, order: [['createdAt', 'DESC'], ['id', 'DESC']], limit: limit + 1 })
      return toPage(rows, limit, (row) => view(row, robot.uuid), (row) => [row.createdAt.toISOString(), row.id])
    },

    /** The robot's PUBACK arrived: pending → delivered. */
    async markDelivered (anyId: string, at = new Date()): Promise<boolean> {
      const commandId = commandKey(anyId)
      if (commandId === null) return false
      if (db.dialect === 'postgres') return (await db.pgPrepared('united_command_delivered', PG_DELIVERED, [commandId, at])).rowCount > 0
      const [count] = await Command.update({ status: 'delivered', deliveredAt: at }, { where: { id: commandId, status: 'pending' } })
      return count > 0
    },

    /**
     * The robot acknowledged command `commandId`: done (its state becomes the
     * command) or failed. Only the robot the command was sent to may ack it,
     * and only while it is open. Returns the new status, or null if ignored.
     */
    async acknowledge (robotUuid: string, anyId: string, ok: boolean, message?: string, at = new Date()): Promise<CommandStatus | null> {
      const commandId = commandKey(anyId)
      if (commandId === null) return null
      const status: CommandStatus = ok ? 'done' : 'failed'
      if (db.dialect === 'postgres') {
        const { rows } = await db.pgPrepared('united_command_ack', PG_ACK, [commandId, robotUuid, status, at, message?.slice(0, 500) ?? null])
        const acked = rows[0]
        if (acked === undefined) return null
        if (ok) events.emit('robotStateChanged', { robotUuid, state: String(acked.command) })
        return status
      }
      const robot = await Robot.findOne({ where: { uuid: robotUuid }, attributes: ['id'] })
      if (robot === null) return null
      const done = await db.transaction(async (transaction) => {
        const row = await Command.findOne({ where: { id: commandId, robotId: robot.id, status: { [Op.in]: OPEN } }, transaction })
        if (row === null) return null
        row.status = status
        row.ackedAt = at
        row.deliveredAt ??= at
        if (message !== undefined) row.message = message.slice(0, 500)
        await row.save({ transaction })
        if (ok) await Robot.update({ state: row.command }, { where: { id: robot.id }, transaction })
        return row
      })
      if (done === null) return null
      if (ok) events.emit('robotStateChanged', { robotUuid, state: done.command })
      return status
    },

    /**
     * Marks every open command sent more than COMMAND_TIMEOUT ago, and every
     * queued command past its expires_at, as expired. Each UPDATE is guarded
     * by the status it leaves: run by several nodes at once, each command
     * still expires once.
     */
    async expireOverdue (now = new Date()): Promise<number> {
      const before = new Date(now.getTime() - timeoutSeconds * 1000)
      const [sent] = await Command.update({ status: 'expired' }, { where: { status: { [Op.in]: OPEN }, sentAt: { [Op.lt]: before } } })
      const [queued] = await Command.update({ status: 'expired' }, { where: { status: 'queued', expiresAt: { [Op.lte]: now } } })
      return sent + queued
    },

    async countByStatus (): Promise<Record<CommandStatus, number>> {
      const rows = await Command.findAll({ attributes: ['status', [db.sequelize.fn('COUNT', db.sequelize.col('id')), 'count']], group: ['status'], raw: true }) as unknown as Array<{ status: CommandStatus, count: number | string }>
      const counts: Record<CommandStatus, number> = { queued: 0, pending: 0, delivered: 0, done: 0, failed: 0, expired: 0, cancelled: 0 }
      for (const r of rows) counts[r.status] = Number(r.count)
      return counts
    }
  }
}

export type CommandService = ReturnType<typeof createCommandService>
