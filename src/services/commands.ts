// Commands (docs/protocol.md §5, §5.3): stored as pending, published by the broker on
// `commandIssued`, then delivered (PUBACK) → done/failed (robot's ack) or
// expired after COMMAND_TIMEOUT. With a `ttl`, a command to a robot that is
// not command-connected is stored as queued instead of refused, released
// (oldest first) when the robot subscribes to its commands, and expired when
// it is still queued after `ttl`. Queued and pending commands can be
// cancelled. Every change of status is one UPDATE guarded by the status it
// leaves, so of two racing changes (a release and a cancel, an ack and a
// sweep) exactly one wins, on any number of nodes.
//
// No one user can flood a robot or the server through its queue: a robot
// holds at most `queueLimit` queued commands (the count and the insert in
// one transaction, under a lock of the robot's row on PostgreSQL), and a
// queue goes out RELEASE_WINDOW commands at a time: the next ones only when
// the robot has PUBACKed (or acknowledged, or let expire) those before. A
// queued command goes out only while its issuer may still command the robot;
// commands of an issuer who lost that right (grant revoked, staff flag
// removed, user deactivated or deleted) are cancelled, audited with no actor
// (the server), when the change happens and again, as a last check, when the
// queue is released.
//
// A command is one of the four modes or a command of the robot's model
// (docs/protocol.md §14.3), its params checked against the model's compiled
// schema after the robot's access check and before anything is stored. A
// mode costs the hot path nothing more: only other commands read the robot's
// model (with its access check, in one query).
import { randomUUID } from 'node:crypto'
import { Op, QueryTypes, type Transaction } from 'sequelize'
import { dateParam, rawDate, sqliteDate, type Database } from '../db/index.js'
import type { Command } from '../db/models/index.js'
import { checkResult, isObject, type ModelRef } from '../contract/models.js'
import { ROBOT_COMMANDS, type CommandStatus } from '../contract/payloads.js'
import { isUuid } from '../contract/uuid.js'
import { Errors } from '../errors.js'
import type { EventBus } from '../events.js'
import { holdsRoleSql, type AccessService, type UserPrincipal } from './access.js'
import type { AuditContext, AuditService } from './audit.js'
import { batchLookup } from './batch.js'
import type { ModelService } from './models.js'
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
  /**
   * When the command expires if nothing else happens to it: a queued one `ttl`
   * after it was issued, a sent one (pending, delivered) COMMAND_TIMEOUT after
   * it was published (or the model command's own timeout); null once it is finished.
   */
  expires_at: string | null
  /** A model command's params ({} when sent without); null for a mode (docs/protocol.md §14.3). */
  params: Record<string, unknown> | null
  /** The result the robot acknowledged a model command with; null when none. */
  result: Record<string, unknown> | null
}

/** The largest `params` of a command, in bytes of JSON (docs/protocol.md §14.3). */
export const MAX_PARAMS_BYTES = 8192

const MODES: readonly string[] = ROBOT_COMMANDS
/** The modes as an SQL list of literals (constants, never input). */
const MODES_SQL = MODES.map((m) => `'${m}'`).join(', ')

/** What a model command carries into its row and message, once checked. */
interface ModelCommand { model: ModelRef, params: Record<string, unknown>, timeout: number | null }

/** The robot's model changed between the check of a command and its insert: check again. */
class ModelChanged extends Error {}

// PostgreSQL, the whole command path in one statement (atomic without
// BEGIN/COMMIT, one round trip): the robot, if this user may reach it by
// access.robotFor's rule ($13 = staff: every robot; else at least the
// operator role, directly or through a group, unexpired at $6), its command
// and the audit record. No row back: no such robot, or no grant (the same
// 404), or, for a model command ($19, $20: the model it was checked
// against; null for a mode), the robot's model changed since.
const PG_ISSUE = `WITH r AS (
  SELECT id FROM robots
  WHERE uuid = $2 AND ($13::boolean OR ${holdsRoleSql({ robot: 'robots.id', user: '$5', now: '$6', need: 'operator' })})
    AND ($19::text IS NULL OR (model_name = $19::text AND model_version = $20::integer))
), c AS (
  INSERT INTO commands (id, robot_id, command, status, issued_by, issued_by_id, created_at, updated_at, expires_at, sent_at, params, timeout_seconds)
  SELECT $1, r.id, $3, $14, $4, $5, $6, $6, $15, $16, $17, $18 FROM r
  RETURNING id
), e AS (
  INSERT INTO audit_events (at, actor_id, actor, action, robot_uuid, target_user_id, details, ip)
  SELECT $6, $7, $8, $9, $2, $10, $11::jsonb, $12 FROM c
)
SELECT id FROM c`

// SQLite, the same check and the command in one INSERT (its audit record
// follows in the same transaction): no rows changed, no robot for this user.
const SQLITE_ISSUE = `INSERT INTO commands (id, robot_id, command, status, issued_by, issued_by_id, created_at, updated_at, expires_at, sent_at, params, timeout_seconds)
SELECT $1, r.id, $3, $8, $4, $5, $6, $6, $9, $10, $11, $12 FROM robots r
WHERE r.uuid = $2 AND ($7 OR ${holdsRoleSql({ robot: 'r.id', user: '$5', now: '$6', need: 'operator' })})
  AND ($13 IS NULL OR (r.model_name = $13 AND r.model_version = $14))`

// Both databases: the robot and its model, if this user may command it
// ($2 = staff). What a command other than a mode is checked against.
function targetSql (dialect: Database['dialect']): string {
  return `SELECT r.id, r.model_name, r.model_version FROM robots r
WHERE r.uuid = $1 AND (${dialect === 'postgres' ? '$2::boolean' : '$2'} OR ${holdsRoleSql({ robot: 'r.id', user: '$3', now: '$4', need: 'operator' })})`
}

// Both databases: the robot's PUBACKs of one turn of the event loop, pending
// → delivered, in one statement (a released queue's ten PUBACKs arrive
// together: on SQLite each commit is a sync of the database file in the
// writer queue that frame batches share).
function deliveredSql (n: number): string {
  const ids = Array.from({ length: n }, (_, i) => `$${i + 2}`).join(', ')
  return `UPDATE commands SET status = 'delivered', delivered_at = $1, updated_at = $1
WHERE id IN (${ids}) AND status = 'pending'
RETURNING id`
}

// PostgreSQL, the robot's acknowledgement in one statement: the command, if
// it is open and was sent to this robot, becomes done ($3 = 'done': the
// robot's state becomes the command, if it is a mode) or failed. A model
// command keeps the result ($6) and the message with its note about a
// refused result ($7); a mode keeps neither result nor note. Guarded by its
// status, the UPDATE lets one acknowledgement win. No row back: nothing to
// acknowledge.
const PG_ACK = `WITH c AS (
  UPDATE commands SET status = $3, acked_at = $4, delivered_at = COALESCE(delivered_at, $4),
    message = COALESCE(CASE WHEN command IN (${MODES_SQL}) THEN $5 ELSE $7 END, message),
    result = CASE WHEN command IN (${MODES_SQL}) THEN NULL ELSE $6 END, updated_at = $4
  WHERE id = $1 AND status IN ('pending', 'delivered') AND robot_id = (SELECT id FROM robots WHERE uuid = $2)
  RETURNING robot_id, command
), r AS (
  UPDATE robots SET state = c.command, updated_at = $4 FROM c WHERE $3 = 'done' AND c.command IN (${MODES_SQL}) AND robots.id = c.robot_id
)
SELECT command FROM c`

/** At most this many commands of a robot are unacknowledged (sent, no PUBACK yet) while its queue is released. */
export const RELEASE_WINDOW = 10

// Both databases (SQLite ≥ 3.35 has RETURNING): the next oldest of a robot's
// queued commands, at most $3 of them, now pending. A command cancelled or
// expired meanwhile is not among them (the outer status guard).
const RELEASE = `UPDATE commands SET status = 'pending', sent_at = $2, updated_at = $2
WHERE status = 'queued' AND id IN (
  SELECT id FROM commands WHERE robot_id = $1 AND status = 'queued' AND expires_at > $2 ORDER BY created_at, id LIMIT $3)
RETURNING id, command, issued_by, created_at, params`

// A robot's commands sent and not yet PUBACKed (the release window's use).
const UNACKNOWLEDGED = "SELECT count(*) AS n FROM commands WHERE robot_id = $1 AND status = 'pending'"

// Whether the issuer of `commands` may command its robot now ($1): an active
// user, staff or holding at least the operator role on it. A deleted
// issuer's commands have no issued_by_id (ON DELETE SET NULL) and may not.
const ISSUER_MAY_COMMAND = `EXISTS (SELECT 1 FROM users u WHERE u.id = commands.issued_by_id AND u.is_active = $TRUE
  AND (u.is_staff = $TRUE OR ${holdsRoleSql({ robot: 'commands.robot_id', user: 'u.id', now: '$1', need: 'operator' })}))`

/**
 * The sent commands (pending, delivered) overdue at $1: sent before $2 (now
 * - COMMAND_TIMEOUT), or, with a timeout of their own, more than that many
 * seconds before $1; now expired ($3 the time of the change).
 */
function expireSentSql (dialect: Database['dialect']): string {
  // SQLite compares its date text: strftime writes sent_at's own format.
  const ownDeadline = dialect === 'postgres'
    ? "$1::timestamptz - timeout_seconds * interval '1 second'"
    : "strftime('%Y-%m-%d %H:%M:%f +00:00', $1, '-' || timeout_seconds || ' seconds')"
  return `UPDATE commands SET status = 'expired', updated_at = $3
WHERE status IN (${sqlList(IN_FLIGHT)}) AND ((timeout_seconds IS NULL AND sent_at < $2) OR (timeout_seconds IS NOT NULL AND sent_at < ${ownDeadline}))
RETURNING id`
}

/** Queued commands in `scope` whose issuer may no longer command the robot, now cancelled. */
function cancelUnauthorizedSql (dialect: Database['dialect'], scope: string): string {
  const yes = dialect === 'postgres' ? 'true' : '1'
  return `UPDATE commands SET status = 'cancelled', updated_at = $1
WHERE status = 'queued' AND ${scope} AND NOT ${ISSUER_MAY_COMMAND.replaceAll('$TRUE', yes)}
RETURNING id, robot_id, issued_by_id`
}

// Command ids are UUIDs, stored in lower case: anything else a robot sends
// names no command (and PostgreSQL would refuse it as a uuid); capitals name
// the same command on both databases.
function commandKey (id: string): string | null {
  const key = id.toLowerCase()
  return isUuid(key) ? key : null
}

const iso = (d: Date | null | undefined): string | null => d === null || d === undefined ? null : d.toISOString()
/** A JSON object column (params, result) as the API shows it. */
function jsonObject (text: string | null | undefined): Record<string, unknown> | null {
  if (text === null || text === undefined) return null
  try {
    const value: unknown = JSON.parse(text)
    return isObject(value) ? value : null
  } catch {
    return null
  }
}
const isEmptyObject = (v: unknown): boolean => isObject(v) && Object.keys(v).length === 0
/** Sent and not finished: what COMMAND_TIMEOUT expires and a robot's ack may finish. */
const IN_FLIGHT: CommandStatus[] = ['pending', 'delivered']
const CANCELLABLE: CommandStatus[] = ['queued', 'pending']

export interface CommandServiceDeps {
  db: Database
  events: EventBus
  audit: AuditService
  access: AccessService
  presence: PresenceService
  /** the compiled models that model commands are checked against (docs/protocol.md §14.3) */
  models: ModelService
  timeoutSeconds: number
  /** queued commands per robot at most (COMMAND_QUEUE_LIMIT) */
  queueLimit?: number
}

/** The statuses a command is still moving through, and those it ends in. */
export const OPEN_STATUSES = ['queued', 'pending', 'delivered'] as const
export const FINISHED_STATUSES = ['done', 'failed', 'expired', 'cancelled'] as const
export type FinishedStatus = typeof FINISHED_STATUSES[number]

/** Statuses as an SQL list of literals (they are constants of this file, never input). */
const sqlList = (statuses: readonly string[]): string => statuses.map((x) => `'${x}'`).join(', ')

/**
 * `commands` read through its index on created_at (migration 011): said to
 * SQLite, whose planner has no statistics and otherwise reads a range of the
 * status index; PostgreSQL's planner picks it for an ordered, limited range.
 */
export function commandsByCreatedAt (dialect: Database['dialect']): string {
  return dialect === 'sqlite' ? 'INDEXED BY commands_created_at' : ''
}

/** Finished commands one retention DELETE removes at most (a short statement). */
export const COMMAND_RETENTION_PIECE = 2000

export function createCommandService ({ db, events, audit, access, presence, models, timeoutSeconds, queueLimit = 100 }: CommandServiceDeps) {
  const { AuditEvent, Command, Robot } = db.models
  const byCreatedAt = commandsByCreatedAt(db.dialect)

  /**
   * expires_at, computed when a command is shown from what expireOverdue
   * decides by: the stored expires_at of a queued command (its ttl), and
   * sent_at + COMMAND_TIMEOUT (or the model command's own timeout) of a
   * sent one. Not stored for sent commands:
   * the answer then always agrees with the sweep, COMMAND_TIMEOUT changed
   * at a restart included, and a release needs no second column written.
   */
  function expiry (status: CommandStatus, queuedUntil: Date | null | undefined, sentAt: Date, timeout: number | null | undefined): string | null {
    if (status === 'queued') return iso(queuedUntil)
    if (IN_FLIGHT.includes(status)) return new Date(sentAt.getTime() + (timeout ?? timeoutSeconds) * 1000).toISOString()
    return null
  }

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
      // Commands sent before migration 008 have no sent_at: they were sent when created.
      expires_at: expiry(row.status as CommandStatus, row.expiresAt, row.sentAt ?? row.createdAt, row.timeoutSeconds),
      params: jsonObject(row.params),
      result: jsonObject(row.result)
    }
  }

  /** Commands this node finished, by status, since it started (counters: /metrics never counts a table). */
  const finished: Record<FinishedStatus, number> = { done: 0, failed: 0, expired: 0, cancelled: 0 }
  /** The open commands of the whole database by status, as last counted by refreshCounts(). */
  let open: Record<typeof OPEN_STATUSES[number], number> = { queued: 0, pending: 0, delivered: 0 }

  /**
   * Cancels, in `transaction`, the queued commands of `scope` (SQL over
   * `commands`, its parameters from $2 on) whose issuer may no longer command
   * the robot, each audited with no actor: the server did it.
   */
  async function cancelUnauthorized (scope: string, bind: unknown[], at: Date, transaction: Transaction): Promise<number> {
    const [rows] = await db.sequelize.query(cancelUnauthorizedSql(db.dialect, scope), { bind: [dateParam(db.dialect, at), ...bind], transaction }) as unknown as [Array<{ id: string, robot_id: number | string, issued_by_id: number | null }>]
    if (rows.length === 0) return 0
    const robots = await Robot.findAll({ where: { id: [...new Set(rows.map((r) => Number(r.robot_id)))] }, attributes: ['id', 'uuid'], transaction })
    const uuidOf = new Map(robots.map((r) => [r.id, r.uuid]))
    await AuditEvent.bulkCreate(rows.map((r) => audit.row({ actor: null }, {
      action: 'command.cancelled',
      robotUuid: uuidOf.get(Number(r.robot_id)),
      targetUserId: r.issued_by_id ?? undefined,
      details: { command_id: r.id, was: 'queued', reason: 'the issuer may no longer command the robot' }
    }, at)), { transaction })
    finished.cancelled += rows.length
    return rows.length
  }

  // One release at a time per robot, so that two (a subscribe and a command
  // queued at the same moment) cannot publish a robot's queue out of order.
  const releasing = new Map<string, Promise<number>>()
  // Robots whose last release filled the window: more of their queue may be
  // waiting for a PUBACK, an ack or an expiry to make room.
  const draining = new Set<string>()

  async function releaseNow (robotUuid: string): Promise<number> {
    const robot = await Robot.findOne({ where: { uuid: robotUuid }, attributes: ['id'] })
    if (robot === null) {
      draining.delete(robotUuid)
      return 0
    }
    const at = new Date()
    const { rows, full } = await db.transaction(async (transaction) => {
      await cancelUnauthorized('robot_id = $2', [robot.id], at, transaction)
      const [unacknowledged] = await db.sequelize.query(UNACKNOWLEDGED, { bind: [robot.id], type: QueryTypes.SELECT, transaction }) as Array<{ n: number | string }>
      const room = RELEASE_WINDOW - Number(unacknowledged?.n ?? 0)
      if (room <= 0) return { rows: [], full: true }
      const [rows] = await db.sequelize.query(RELEASE, { bind: [robot.id, dateParam(db.dialect, at), room], transaction }) as unknown as [Array<{ id: string, command: string, issued_by: string, created_at: unknown, params: string | null }>]
      return { rows, full: rows.length === room }
    })
    if (full) draining.add(robotUuid)
    else draining.delete(robotUuid)
    const released = rows.map((r) => ({ ...r, createdAt: rawDate(r.created_at) }))
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || (a.id < b.id ? -1 : 1))
    for (const r of released) {
      const params = jsonObject(r.params)
      events.emit('commandIssued', { id: r.id, robotUuid, command: r.command, issuedBy: r.issued_by, issuedAt: r.createdAt.toISOString(), ...(params === null ? {} : { params }) })
    }
    return released.length
  }

  const delivered = batchLookup<string, true>(async (ids) => {
    const at = new Date()
    const [rows] = await db.sequelize.query(deliveredSql(ids.length), { bind: [dateParam(db.dialect, at), ...ids] }) as unknown as [Array<{ id: string }>]
    return new Map(rows.map((r) => [String(r.id), true as const]))
  }, 500)

  /** Why a command was not stored: no such robot for this user (404), or too low a role (403). */
  async function refused (principal: UserPrincipal, robotUuid: string, checked: ModelCommand | null = null): Promise<never> {
    if (checked !== null) {
      // A model command's insert also needs the model it was checked against.
      const robot = await target(principal, robotUuid)
      if (robot.model?.name !== checked.model.name || robot.model.version !== checked.model.version) throw new ModelChanged()
    }
    await access.robotFor(principal, robotUuid, 'operator')
    throw new Errors.ROBOT_NOT_FOUND() // the role ended in between
  }

  /** The robot and its model, if this user may command it (else 404 or 403, as access.robotFor answers). */
  async function target (principal: UserPrincipal, robotUuid: string): Promise<{ id: number, model: ModelRef | null }> {
    const rows = await db.sequelize.query(targetSql(db.dialect), {
      type: QueryTypes.SELECT,
      bind: [robotUuid, db.dialect === 'postgres' ? principal.isStaff : (principal.isStaff ? 1 : 0), principal.id, dateParam(db.dialect, new Date())]
    }) as Array<{ id: number | string, model_name: string | null, model_version: number | string | null }>
    const row = rows[0]
    if (row === undefined) return await refused(principal, robotUuid)
    return { id: Number(row.id), model: row.model_name === null || row.model_version === null ? null : { name: row.model_name, version: Number(row.model_version) } }
  }

  /**
   * docs/protocol.md §14.3: the command is a mode (null; no params but {})
   * or a command of the robot's model whose params match its schema. The
   * robot's access check comes first (404, 403), then 400
   * UNITED_UNKNOWN_COMMAND or UNITED_INVALID_PARAMS, before anything is
   * stored. A mode without params is not looked up here: its insert checks
   * the access.
   */
  async function checkCommand (principal: UserPrincipal, robotUuid: string, command: string, params: unknown): Promise<ModelCommand | null> {
    if (MODES.includes(command)) {
      if (params === undefined || isEmptyObject(params)) return null
      await access.robotFor(principal, robotUuid, 'operator')
      throw new Errors.INVALID_PARAMS(`params: ${command} is a mode and takes no parameters`)
    }
    const robot = await target(principal, robotUuid)
    const compiled = robot.model === null ? null : await models.compiled(robot.model)
    const declared = compiled?.commands.get(command)
    if (compiled === null || declared === undefined) {
      const known = compiled === null ? 'the robot has no model' : `commands of its model ${compiled.name} v${compiled.version}: ${[...compiled.commands.keys()].join(', ') || 'none'}`
      throw new Errors.UNKNOWN_COMMAND(`command ${JSON.stringify(command)} is neither a mode (${MODES.join(', ')}) nor a command of the robot's model (${known})`.slice(0, 1000))
    }
    if (params !== undefined) {
      const bytes = Buffer.byteLength(JSON.stringify(params))
      if (bytes > MAX_PARAMS_BYTES) throw new Errors.INVALID_PARAMS(`params is ${bytes} bytes of JSON, over the limit of ${MAX_PARAMS_BYTES}`)
    }
    const errors = declared.checkParams(params)
    if (errors !== null) throw new Errors.INVALID_PARAMS(errors.slice(0, 20).join('; ') + (errors.length > 20 ? `; and ${errors.length - 20} more` : ''))
    return { model: robot.model as ModelRef, params: (params ?? {}) as Record<string, unknown>, timeout: declared.timeout }
  }

  /**
   * Stores a queued command, unless the robot's queue is full: the robot (if
   * this user may reach it), the count of its queue and the insert in one
   * transaction. On PostgreSQL the robot's row is locked first (FOR NO KEY
   * UPDATE, which the frame writer's FOR KEY SHARE does not wait for), so
   * that two requests at once cannot both take the last place; SQLite's
   * transactions run one at a time anyway.
   */
  async function enqueue (principal: UserPrincipal, robotUuid: string, c: { id: string, command: string, at: Date, expiresAt: Date, checked: ModelCommand | null }, record: ReturnType<AuditService['row']>): Promise<void> {
    const pg = db.dialect === 'postgres'
    const outcome = await db.transaction(async (transaction) => {
      const robots = await db.sequelize.query(`SELECT r.id FROM robots r
WHERE r.uuid = $1 AND (${pg ? '$2::boolean' : '$2'} OR ${holdsRoleSql({ robot: 'r.id', user: '$3', now: '$4', need: 'operator' })})
  AND (${pg ? '$5::text' : '$5'} IS NULL OR (r.model_name = $5 AND r.model_version = $6))${pg ? ' FOR NO KEY UPDATE OF r' : ''}`, {
        type: QueryTypes.SELECT, transaction, bind: [robotUuid, pg ? principal.isStaff : (principal.isStaff ? 1 : 0), principal.id, dateParam(db.dialect, c.at), c.checked?.model.name ?? null, c.checked?.model.version ?? null]
      }) as Array<{ id: number }>
      const robot = robots[0]
      if (robot === undefined) return 'not found'
      const [queued] = await db.sequelize.query("SELECT count(*) AS n FROM commands WHERE robot_id = $1 AND status = 'queued'", { type: QueryTypes.SELECT, transaction, bind: [robot.id] }) as Array<{ n: number | string }>
      if (Number(queued?.n ?? 0) >= queueLimit) return 'full'
      await db.sequelize.query(`INSERT INTO commands (id, robot_id, command, status, issued_by, issued_by_id, created_at, updated_at, expires_at, sent_at, params, timeout_seconds)
VALUES ($1, $2, $3, 'queued', $4, $5, $6, $6, $7, NULL, $8, $9)`, {
        type: QueryTypes.INSERT,
        transaction,
        bind: [c.id, robot.id, c.command, principal.username, principal.id, dateParam(db.dialect, c.at), dateParam(db.dialect, c.expiresAt), c.checked === null ? null : JSON.stringify(c.checked.params), c.checked?.timeout ?? null]
      })
      await AuditEvent.create(record, { transaction })
      return 'queued'
    })
    if (outcome === 'not found') await refused(principal, robotUuid, c.checked)
    if (outcome === 'full') throw new Errors.QUEUE_FULL()
  }

  /**
   * The robot is command-connected: its queued commands become pending and
   * are published, oldest first. Resolves with how many.
   */
  async function releaseQueued (robotUuid: string, onStart?: () => void): Promise<number> {
    const previous = releasing.get(robotUuid) ?? Promise.resolve(0)
    const next = previous.catch(() => 0).then(async () => {
      onStart?.()
      return await releaseNow(robotUuid)
    })
    releasing.set(robotUuid, next)
    try {
      return await next
    } finally {
      if (releasing.get(robotUuid) === next) releasing.delete(robotUuid)
    }
  }

  /**
   * A command of the robot left the window (PUBACK, ack, expiry): release
   * the next of its queue, if it has one. One release is asked at a time per
   * robot: the ten PUBACKs of a window make one release, not ten.
   */
  function makeRoom (robotUuid: string): void {
    if (!draining.has(robotUuid) || roomAsked.has(robotUuid)) return
    roomAsked.add(robotUuid)
    const release: Promise<unknown> = releaseQueued(robotUuid, () => { roomAsked.delete(robotUuid) })
      .catch((err: unknown) => { onReleaseError(err, robotUuid) })
      .finally(() => { making.delete(release) })
    making.add(release)
  }
  /** Robots whose release, asked by makeRoom, has not started yet. */
  const roomAsked = new Set<string>()
  /** Releases started by makeRoom, awaited at shutdown before the database closes. */
  const making = new Set<Promise<unknown>>()
  let onReleaseError: (err: unknown, robotUuid: string) => void = () => {}

  /**
   * Stores a checked command: pending and published when the robot is
   * command-connected; else queued for `ttlSeconds` when given, else 409.
   */
  async function store (principal: UserPrincipal, robotUuid: string, command: string, ctx: AuditContext, ttlSeconds: number | undefined, checked: ModelCommand | null): Promise<CommandView> {
    const connected = await presence.isCommandConnected(robotUuid)
    if (!connected && ttlSeconds === undefined) {
      // 404 (or 403) first: a robot this user cannot reach is not "not connected" (a model command's check did it)
      if (checked === null) await access.robotFor(principal, robotUuid, 'operator')
      throw new Errors.ROBOT_NOT_CONNECTED()
    }
    const id = randomUUID()
    const at = new Date()
    const status: CommandStatus = connected ? 'pending' : 'queued'
    const expiresAt = connected ? null : new Date(at.getTime() + (ttlSeconds as number) * 1000)
    const sentAt = connected ? at : null
    const details: Record<string, unknown> = { command_id: id, command }
    if (checked !== null) details.params = checked.params
    if (!connected) details.ttl = ttlSeconds
    const paramsText = checked === null ? null : JSON.stringify(checked.params)
    const timeout = checked?.timeout ?? null
    const record = audit.row(ctx, { action: connected ? 'command.sent' : 'command.queued', robotUuid, details }, at)
    if (!connected) {
      await enqueue(principal, robotUuid, { id, command, at, expiresAt: expiresAt as Date, checked }, record)
    } else if (db.dialect === 'postgres') {
      const created = await db.pgPrepared('united_command_issue', PG_ISSUE,
        [id, robotUuid, command, principal.username, principal.id, at, record.actorId, record.actor, record.action, record.targetUserId, JSON.stringify(record.details), record.ip, principal.isStaff, status, expiresAt, sentAt,
          paramsText, timeout, checked?.model.name ?? null, checked?.model.version ?? null])
      if (created.rowCount === 0) await refused(principal, robotUuid, checked)
    } else {
      const created = await db.transaction(async (transaction) => {
        const [, changes] = await db.sequelize.query(SQLITE_ISSUE, {
          type: QueryTypes.INSERT,
          transaction,
          bind: [id, robotUuid, command, principal.username, principal.id, sqliteDate(at), principal.isStaff ? 1 : 0, status, sqliteDate(expiresAt), sqliteDate(sentAt),
            paramsText, timeout, checked?.model.name ?? null, checked?.model.version ?? null]
        }) as unknown as [unknown, number]
        if (changes === 0) return false
        await AuditEvent.create(record, { transaction })
        return true
      })
      if (!created) await refused(principal, robotUuid, checked)
    }
    const result: CommandView = {
      id, robot_uuid: robotUuid, command, status, issued_by: principal.username, created_at: at.toISOString(), delivered_at: null, acked_at: null,
      expires_at: expiry(status, expiresAt, at, timeout), params: checked?.params ?? null, result: null
    }
    if (connected) {
      events.emit('commandIssued', { id, robotUuid, command, issuedBy: principal.username, issuedAt: result.created_at, ...(checked === null ? {} : { params: checked.params }) })
    } else if (await presence.isCommandConnected(robotUuid)) {
      // The robot subscribed while this was being stored: its release may
      // have run before the row existed. Release again (a no-op if not).
      await releaseQueued(robotUuid)
    }
    return result
  }

  return {
    /**
     * docs/protocol.md §5, §5.3 and §14.3: a mode, or a command of the
     * robot's model with `params` that match its schema (400 otherwise,
     * after the access check); pending and published when the robot is
     * command-connected; else queued for `ttlSeconds` when given, else 409.
     */
    async issue (principal: UserPrincipal, robotUuid: string, command: string, ctx: AuditContext, ttlSeconds?: number, params?: unknown): Promise<CommandView> {
      for (let attempt = 1; ; attempt++) {
        const checked = await checkCommand(principal, robotUuid, command, params)
        try {
          return await store(principal, robotUuid, command, ctx, ttlSeconds, checked)
        } catch (err) {
          // The robot was given another model meanwhile: check against that one.
          if (!(err instanceof ModelChanged)) throw err
          if (attempt >= 3) throw new Errors.ROBOT_NOT_FOUND()
        }
      }
    },

    releaseQueued,

    /**
     * docs/protocol.md §5.4: a queued or pending command becomes cancelled (a later ack
     * of it is ignored); 409 when it was past that, 404 when there is no such
     * command of a robot this user may reach.
     */
    async cancel (principal: UserPrincipal, robotUuid: string, anyId: string, ctx: AuditContext): Promise<CommandView> {
      const robot = await access.robotFor(principal, robotUuid, 'operator')
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
      finished.cancelled++
      makeRoom(robot.uuid)
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

    /**
     * The robot's PUBACK arrived: pending → delivered (and, while its queue
     * drains, the next of it goes out). The PUBACKs of one turn of the event
     * loop are one UPDATE.
     */
    async markDelivered (anyId: string, robotUuid?: string): Promise<boolean> {
      const commandId = commandKey(anyId)
      if (commandId === null) return false
      const changed = await delivered(commandId) === true
      if (changed && robotUuid !== undefined) makeRoom(robotUuid)
      return changed
    },

    /**
     * The robot acknowledged command `commandId`: done (a mode becomes the
     * robot's state; a model command does not change it) or failed. Only the
     * robot the command was sent to may ack it, and only while it is open.
     * A model command keeps the ack's `result` when it is a JSON object of at
     * most MAX_RESULT_BYTES; any other result is not stored, the status
     * still counts, and the command's message begins "result refused: …"
     * (docs/protocol.md §14.3). A mode keeps no result. Returns the new
     * status, or null if ignored.
     */
    async acknowledge (robotUuid: string, anyId: string, ok: boolean, message?: string, { at = new Date(), result }: { at?: Date, result?: unknown } = {}): Promise<CommandStatus | null> {
      const commandId = commandKey(anyId)
      if (commandId === null) return null
      const status: CommandStatus = ok ? 'done' : 'failed'
      // An explicit null is no result.
      const refusal = result === undefined || result === null ? null : checkResult(result)
      const resultText = result === undefined || result === null || refusal !== null ? null : JSON.stringify(result)
      const plain = message?.slice(0, 500) ?? null
      // The note first: a long message of the robot's cannot push it out of the 500 characters.
      const noted = refusal === null ? plain : [`result refused: ${refusal}`, message].filter((m) => m !== undefined).join('; ').slice(0, 500)
      if (db.dialect === 'postgres') {
        const { rows } = await db.pgPrepared('united_command_ack', PG_ACK, [commandId, robotUuid, status, at, plain, resultText, noted])
        const acked = rows[0]
        if (acked === undefined) return null
        finished[status]++
        makeRoom(robotUuid)
        if (ok && MODES.includes(String(acked.command))) events.emit('robotStateChanged', { robotUuid, state: String(acked.command) })
        return status
      }
      const robot = await Robot.findOne({ where: { uuid: robotUuid }, attributes: ['id'] })
      if (robot === null) return null
      const done = await db.transaction(async (transaction) => {
        const row = await Command.findOne({ where: { id: commandId, robotId: robot.id, status: { [Op.in]: IN_FLIGHT } }, transaction })
        if (row === null) return null
        const mode = MODES.includes(row.command)
        row.status = status
        row.ackedAt = at
        row.deliveredAt ??= at
        const kept = mode ? plain : noted
        if (kept !== null) row.message = kept
        if (!mode) row.result = resultText
        await row.save({ transaction })
        if (ok && mode) await Robot.update({ state: row.command }, { where: { id: robot.id }, transaction })
        return row
      })
      if (done === null) return null
      finished[status]++
      makeRoom(robotUuid)
      if (ok && MODES.includes(done.command)) events.emit('robotStateChanged', { robotUuid, state: done.command })
      return status
    },

    /**
     * Marks every open command sent more than COMMAND_TIMEOUT (or its own
     * timeout, a model command's) ago, and every queued command past its
     * expires_at, as expired. Each UPDATE is guarded by the status it
     * leaves: run by several nodes at once, each command still expires once.
     */
    async expireOverdue (now = new Date()): Promise<number> {
      const before = new Date(now.getTime() - timeoutSeconds * 1000)
      const [expired] = await db.sequelize.query(expireSentSql(db.dialect), { bind: [dateParam(db.dialect, now), dateParam(db.dialect, before), dateParam(db.dialect, new Date())] }) as unknown as [unknown[]]
      const sent = expired.length
      const [queued] = await Command.update({ status: 'expired' }, { where: { status: 'queued', expiresAt: { [Op.lte]: now } } })
      finished.expired += sent + queued
      // Expired commands left the window of the queues being released here.
      if (sent > 0) {
        for (const robotUuid of [...draining]) {
          if (await presence.isCommandConnected(robotUuid)) makeRoom(robotUuid)
          else draining.delete(robotUuid) // its next subscription releases the rest
        }
      }
      return sent + queued
    },

    /**
     * Cancels the queued commands of `userId` (and those whose issuer was
     * deleted) that their issuer may no longer send: called when a grant is
     * revoked, a staff flag removed, a user deactivated or deleted. Idempotent
     * and safe on several nodes at once (each command is cancelled once).
     */
    async cancelUnauthorized (userId: number, at = new Date()): Promise<number> {
      return await db.transaction(async (transaction) => await cancelUnauthorized('(issued_by_id = $2 OR issued_by_id IS NULL)', [userId], at, transaction))
    },

    /** The same for the queued commands of one robot (a group lost it), or of every robot (null: a group was deleted). */
    async cancelUnauthorizedOn (robotUuid: string | null, at = new Date()): Promise<number> {
      return await db.transaction(async (transaction) => robotUuid === null
        ? await cancelUnauthorized('1 = 1', [], at, transaction)
        : await cancelUnauthorized('robot_id = (SELECT id FROM robots WHERE uuid = $2)', [robotUuid], at, transaction))
    },

    /** Waits for the releases that PUBACKs, acks and expiries started (shutdown). */
    async settle (): Promise<void> {
      while (making.size > 0) await Promise.all([...making])
    },

    /** Where a failed release (after a PUBACK, an ack or an expiry) is reported. */
    onReleaseError (report: (err: unknown, robotUuid: string) => void): void {
      onReleaseError = report
    },

    /**
     * Counts the open commands (queued, pending, delivered) of the whole
     * database, through the status index: what is open is bounded by the
     * robots' queues and timeouts, whatever the size of the table. Run in
     * the background; countByStatus() answers from the last count.
     */
    async refreshCounts (): Promise<void> {
      const rows = await db.sequelize.query(
        `SELECT status, count(*) AS n FROM commands WHERE status IN (${sqlList(OPEN_STATUSES)}) GROUP BY status`,
        { type: QueryTypes.SELECT }) as Array<{ status: typeof OPEN_STATUSES[number], n: number | string }>
      const next = { queued: 0, pending: 0, delivered: 0 }
      for (const r of rows) next[r.status] = Number(r.n)
      open = next
    },

    /**
     * Open commands in the whole database (as last counted, every few
     * seconds), and the commands this node finished since it started: read
     * in constant time, so that /metrics and the dashboard never scan the
     * commands table.
     */
    countByStatus (): { open: Record<typeof OPEN_STATUSES[number], number>, finished: Record<FinishedStatus, number> } {
      return { open: { ...open }, finished: { ...finished } }
    },

    /**
     * Deletes the finished commands created before `cutoff`, in pieces of
     * COMMAND_RETENTION_PIECE, each its own short statement followed by a
     * pause as long as it took (as frame retention does). Open commands are
     * never deleted. Resolves with how many went.
     */
    async removeFinishedOlderThan (cutoff: Date, opts: { piece?: number, stop?: () => boolean } = {}): Promise<number> {
      const piece = opts.piece ?? COMMAND_RETENTION_PIECE
      // Through the index on created_at, oldest first, on both databases:
      // SQLite's planner, without statistics, preferred the status index and
      // read and sorted every finished command for each piece (seconds at
      // 1,000,000 commands, in the writer queue the frame batches share).
      const sql = `DELETE FROM commands WHERE id IN (SELECT id FROM commands ${byCreatedAt} WHERE created_at < $1 AND status IN (${sqlList(FINISHED_STATUSES)}) ORDER BY created_at LIMIT ${piece})`
      let removed = 0
      for (;;) {
        if (opts.stop?.() === true) return removed
        const started = performance.now()
        const n = Number(await db.serialized(async () => await db.sequelize.query(sql, { type: QueryTypes.BULKDELETE, bind: [dateParam(db.dialect, cutoff)] })))
        removed += n
        const took = performance.now() - started
        await new Promise<void>((resolve) => { if (took >= 1) setTimeout(resolve, took); else setImmediate(resolve) })
        if (n < piece) return removed
      }
    }
  }
}

export type CommandService = ReturnType<typeof createCommandService>
