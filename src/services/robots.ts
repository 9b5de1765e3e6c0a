// Robots: the fleet register. Disabling, deleting or rotating a robot voids
// its tokens and announces `robotRevoked`, so the broker closes its
// connections (docs/protocol.md §2.2).
import { randomUUID } from 'node:crypto'
import { col, fn, literal, Op, UniqueConstraintError, where as sqlWhere, type WhereOptions } from 'sequelize'
import { dateParam, type Database } from '../db/index.js'
import type { Robot } from '../db/models/index.js'
import { Errors } from '../errors.js'
import type { EventBus } from '../events.js'
import type { ModelRef } from '../contract/models.js'
import { holdsRoleSql } from './access.js'
import type { AuditContext, AuditService } from './audit.js'
import { batchLookup } from './batch.js'
import type { ModelService } from './models.js'
import { decodeCursor, pageLimit, toPage, type Page, type PageRequest } from './pagination.js'
import { hashGeneratedSecret, hashSecret, randomToken, verifyAgainstGeneratedDummy, verifySecret } from './secrets.js'
import type { TokenStore } from './token-store.js'

export interface RobotView {
  uuid: string
  serial: string
  name: string
  enabled: boolean
  state: string
  data_connected: boolean
  command_connected: boolean
  last_seen_at: string | null
  created_at: string
  /** The robot's model (docs/protocol.md §14), or null. */
  model: ModelRef | null
}
export interface NewRobot { serial: string, name?: string, token?: string, model?: ModelRef | null }
export interface RobotPatch { serial?: string, name?: string, enabled?: boolean, model?: ModelRef | null }
export interface RobotListRequest extends PageRequest { q?: string, enabled?: boolean, online?: boolean, state?: string }
/** A new secret (shown once) and until when the previous one still works, if it does. */
export interface RotatedSecret { token: string, previousValidUntil: Date | null }

/** docs/protocol.md §2.4: the longest grace period of a rotation, 7 days. */
export const MAX_GRACE_SECONDS = 604_800

/** How long after its grace period a rotated-out secret is still recognized as revoked. */
export const ROTATED_OUT_DAYS = 7
const ROTATED_OUT_MS = ROTATED_OUT_DAYS * 86_400_000

/**
 * Which of a robot's secrets a presented one matched: its current one, its
 * previous one during the grace period, or its previous one after the grace
 * period ended (less than ROTATED_OUT_DAYS ago: a revoked credential).
 */
export interface SecretMatch { robot: { uuid: string, enabled: boolean }, secret: 'current' | 'previous' | 'rotated-out' }

export function robotView (row: Robot): RobotView {
  return {
    uuid: row.uuid,
    serial: row.serial,
    name: row.name,
    enabled: row.enabled,
    state: row.state,
    data_connected: row.dataConnected,
    command_connected: row.commandConnected,
    last_seen_at: row.lastSeenAt === null || row.lastSeenAt === undefined ? null : row.lastSeenAt.toISOString(),
    created_at: row.createdAt.toISOString(),
    model: modelRefOf(row)
  }
}

/** The robot's model as robot items show it. */
export function modelRefOf (row: { modelName?: string | null, modelVersion?: number | null }): ModelRef | null {
  return row.modelName === null || row.modelName === undefined || row.modelVersion === null || row.modelVersion === undefined ? null : { name: row.modelName, version: row.modelVersion }
}

const sameModel = (a: ModelRef | null, b: ModelRef | null): boolean => a === null || b === null ? a === b : a.name === b.name && a.version === b.version

export function createRobotService ({ db, events, audit, tokens, models }: { db: Database, events: EventBus, audit: AuditService, tokens: TokenStore, models: ModelService }) {
  const { Robot, Frame } = db.models

  // obtain_token and CONNECT read one robot row each; a fleet reconnecting at
  // once reads them in batches (services/batch.ts), raw (no model instance).
  const bySerial = batchLookup(async (serials: string[]) => {
    const rows = await Robot.findAll({ where: { serial: { [Op.in]: serials } }, attributes: ['uuid', 'serial', 'enabled', 'secretHash', 'previousSecretHash', 'previousSecretExpiresAt'], raw: true })
    return new Map(rows.map((r) => [r.serial, r]))
  })
  const byUuid = batchLookup(async (uuids: string[]) => {
    const rows = await Robot.findAll({ where: { uuid: { [Op.in]: uuids } }, attributes: ['id', 'uuid', 'enabled', 'state', 'modelName', 'modelVersion'], raw: true })
    return new Map(rows.map((r) => [r.uuid, { id: r.id, uuid: r.uuid, enabled: Boolean(r.enabled), state: r.state, model: modelRefOf(r) }]))
  })

  async function revoke (uuid: string, reason: 'disabled' | 'deleted' | 'rotated'): Promise<void> {
    await tokens.revokeRobot(uuid)
    events.emit('robotRevoked', { robotUuid: uuid, reason })
  }

  function uniqueSerial<T> (work: () => Promise<T>): Promise<T> {
    return work().catch((err: unknown) => {
      if (err instanceof UniqueConstraintError) throw new Errors.SERIAL_TAKEN()
      throw err
    })
  }

  /**
   * Replaces the secret with a generated one (returned once). With
   * `graceSeconds` 0 every token issued with the old one is void and the
   * robot's connections close (docs/protocol.md §2.4). With more (docs/protocol.md §2.4), the
   * old secret still works at obtain_token for that long and the robot's
   * tokens and connections are left alone.
   *
   * The old secret's hash is kept either way, with the end of its grace
   * (now, for 0): for ROTATED_OUT_DAYS after that it is answered as a
   * revoked credential rather than a wrong one (matchSecret). Only one
   * previous secret is kept: rotating again forgets the older one, which
   * from then on is just a wrong secret, even during its grace period.
   */
  async function rotate (uuid: string, ctx: AuditContext, graceSeconds = 0): Promise<RotatedSecret> {
    if (!Number.isSafeInteger(graceSeconds) || graceSeconds < 0 || graceSeconds > MAX_GRACE_SECONDS) {
      throw new Errors.BAD_REQUEST(`grace_seconds must be an integer from 0 to ${MAX_GRACE_SECONDS}`)
    }
    const token = randomToken(24)
    const secretHash = hashGeneratedSecret(token)
    const now = Date.now()
    const previousValidUntil = graceSeconds > 0 ? new Date(now + graceSeconds * 1000) : null
    await db.transaction(async (transaction) => {
      // FOR UPDATE on PostgreSQL: two rotations at once must not both keep
      // the same previous secret and lose the first one's new secret.
      const robot = await Robot.findOne({ where: { uuid }, transaction, lock: transaction.LOCK.UPDATE })
      if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
      // The previous secret keeps the hash it had, scrypt or sha256.
      robot.previousSecretHash = robot.secretHash
      robot.previousSecretExpiresAt = previousValidUntil ?? new Date(now)
      robot.secretHash = secretHash
      await robot.save({ transaction })
      await audit.record(ctx, { action: 'robot.token_rotated', robotUuid: uuid, details: { grace_seconds: graceSeconds } }, transaction)
    })
    if (previousValidUntil === null) await revoke(uuid, 'rotated')
    return { token, previousValidUntil }
  }

  /**
   * Which secret of the robot with this serial the presented one matches,
   * or null (unknown serial, or no match). An unknown serial costs what a
   * generated secret costs (secrets.ts, verifyAgainstGeneratedDummy).
   *
   * The previous secret is checked only when the current one did not
   * match, and only while it is remembered (its grace period and
   * ROTATED_OUT_DAYS after): a wrong secret then costs two hash checks
   * rather than one. Both are SHA-256 for generated secrets, so nothing
   * shows; a remembered scrypt hash (an admin-typed secret, rotated out)
   * makes a wrong secret take a second scrypt, ~30 ms longer, which tells a
   * prober that the robot was rotated in the last 7 days, nothing about
   * either secret.
   */
  async function matchSecret (serial: string, secret: string): Promise<SecretMatch | null> {
    const row = await bySerial(serial)
    if (row === undefined) return await verifyAgainstGeneratedDummy(secret) || null
    const robot = { uuid: row.uuid, enabled: Boolean(row.enabled) }
    if (await verifySecret(secret, row.secretHash)) return { robot, secret: 'current' }
    const previous = row.previousSecretHash
    // raw rows hold SQLite's dates as text, PostgreSQL's as Date objects
    const until = row.previousSecretExpiresAt === null || row.previousSecretExpiresAt === undefined ? NaN : new Date(row.previousSecretExpiresAt).getTime()
    const now = Date.now()
    if (previous === null || previous === undefined || !(until + ROTATED_OUT_MS > now)) return null
    if (!await verifySecret(secret, previous)) return null
    return { robot, secret: until > now ? 'previous' : 'rotated-out' }
  }

  return {
    /** Creates a robot. The secret is the given one or a generated one, returned once. */
    async create (input: NewRobot, ctx: AuditContext): Promise<RobotView & { token: string }> {
      // A generated secret is 192 random bits: a fast hash is enough
      // (secrets.ts). One an admin typed may be weak: scrypt.
      const token = input.token ?? randomToken(24)
      const secretHash = input.token === undefined ? hashGeneratedSecret(token) : await hashSecret(token)
      return await uniqueSerial(() => db.transaction(async (transaction) => {
        const model = input.model ?? null
        if (model !== null) await models.hold(model, transaction)
        const robot = await Robot.create({ uuid: randomUUID(), serial: input.serial, name: input.name ?? '', secretHash, modelName: model?.name ?? null, modelVersion: model?.version ?? null }, { transaction })
        await audit.record(ctx, { action: 'robot.created', robotUuid: robot.uuid, details: { serial: robot.serial, name: robot.name, secret_generated: input.token === undefined, ...(model === null ? {} : { model }) } }, transaction)
        return { ...robotView(robot), token }
      }))
    },

    async get (uuid: string): Promise<RobotView> {
      const robot = await Robot.findOne({ where: { uuid } })
      if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
      return robotView(robot)
    },

    async findBySerial (serial: string): Promise<RobotView | null> {
      const robot = await Robot.findOne({ where: { serial } })
      return robot === null ? null : robotView(robot)
    },

    /**
     * A page of robots by id. `visibleTo` limits it to the robots that user
     * holds a role on; `q` searches serial and name; `online` means data-connected;
     * `state` is the robot's last commanded state.
     */
    async list (req: RobotListRequest & { visibleTo?: number } = {}): Promise<Page<RobotView>> {
      const limit = pageLimit(req.limit)
      const where: Array<Record<string | symbol, unknown> | ReturnType<typeof literal>> = []
      if (req.cursor !== undefined) where.push({ id: { [Op.gt]: decodeCursor(req.cursor, ['number'])[0] } })
      if (req.q !== undefined && req.q !== '') {
        // `q` is literal text, case-insensitive. PostgreSQL escapes LIKE
        // wildcards with a backslash; SQLite's LIKE has no default escape
        // character, so there a case-insensitive instr() does the search.
        const q = req.q
        if (db.dialect === 'postgres') {
          const like = `%${q.replace(/[\\%_]/g, (c) => '\\' + c)}%`
          where.push({ [Op.or]: [{ serial: { [Op.iLike]: like } }, { name: { [Op.iLike]: like } }] })
        } else {
          const contains = (column: string) => sqlWhere(fn('instr', fn('lower', col(`Robot.${column}`)), fn('lower', q)), Op.gt, 0)
          where.push({ [Op.or]: [contains('serial'), contains('name')] })
        }
      }
      if (req.enabled !== undefined) where.push({ enabled: req.enabled })
      if (req.online !== undefined) where.push({ dataConnected: req.online })
      if (req.state !== undefined) where.push({ state: req.state })
      // Robots the user holds a role on now, directly or through a group (access.ts's rule).
      if (req.visibleTo !== undefined) {
        const now = db.sequelize.escape(dateParam(db.dialect, new Date()) as string)
        where.push(literal(holdsRoleSql({ robot: '"Robot"."id"', user: String(Math.trunc(req.visibleTo)), now })))
      }
      const rows = await Robot.findAll({ where: { [Op.and]: where as WhereOptions[] }, order: [['id', 'ASC']], limit: limit + 1 })
      return toPage(rows, limit, robotView, (row) => [row.id])
    },

    async update (uuid: string, patch: RobotPatch, ctx: AuditContext): Promise<RobotView> {
      let disabled = false
      let modelChanged = false
      const robot = await uniqueSerial(() => db.transaction(async (transaction) => {
        const robot = await Robot.findOne({ where: { uuid }, transaction })
        if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
        disabled = robot.enabled && patch.enabled === false
        if (patch.serial !== undefined) robot.serial = patch.serial
        if (patch.name !== undefined) robot.name = patch.name
        if (patch.enabled !== undefined) robot.enabled = patch.enabled
        if (patch.model !== undefined && !sameModel(patch.model, modelRefOf(robot))) {
          if (patch.model !== null) await models.hold(patch.model, transaction)
          robot.modelName = patch.model?.name ?? null
          robot.modelVersion = patch.model?.version ?? null
          modelChanged = true
        }
        await robot.save({ transaction })
        await audit.record(ctx, { action: 'robot.updated', robotUuid: uuid, details: { ...patch } }, transaction)
        return robot
      }))
      if (disabled) await revoke(uuid, 'disabled')
      if (modelChanged) events.emit('robotModelChanged', { robotUuid: uuid, model: modelRefOf(robot) })
      return robotView(robot)
    },

    async remove (uuid: string, ctx: AuditContext): Promise<void> {
      await db.transaction(async (transaction) => {
        const robot = await Robot.findOne({ where: { uuid }, transaction })
        if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
        await robot.destroy({ transaction })
        // Frames have no foreign key on PostgreSQL (migration 004): they go
        // here, after the robot. Deleting the robot waited for any frame batch
        // that locked it, so this statement sees that batch's frames too, and
        // later batches find no robot (SQLite's key has removed them already).
        await Frame.destroy({ where: { robotId: robot.id }, transaction })
        // and their rollups (SQLite may give the id to the next robot)
        await db.sequelize.query('DELETE FROM frame_rollups WHERE robot_id = $1', { bind: [robot.id], transaction })
        await db.sequelize.query('DELETE FROM frame_field_rollups WHERE robot_id = $1', { bind: [robot.id], transaction })
        await audit.record(ctx, { action: 'robot.deleted', robotUuid: uuid, details: { serial: robot.serial } }, transaction)
      })
      await revoke(uuid, 'deleted')
    },

    rotate,

    /** Until when the robot's previous secret still works (ISO 8601), or null when it has none that does. */
    async previousSecretExpiry (uuid: string): Promise<string | null> {
      const robot = await Robot.findOne({ where: { uuid }, attributes: ['previousSecretExpiresAt'] })
      if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
      const until = robot.previousSecretExpiresAt
      return until === null || until === undefined || until.getTime() <= Date.now() ? null : until.toISOString()
    },

    /** What the broker needs of a connected robot, or null when it is gone. */
    async ref (uuid: string): Promise<{ id: number, uuid: string, enabled: boolean, state: string, model: ModelRef | null } | null> {
      return await byUuid(uuid) ?? null
    },

    /**
     * Records how robots are connected now (docs/protocol.md §3, §6), and that they
     * were seen at `lastSeenAt`: one UPDATE per combination of flags, however
     * many robots (a fleet reconnecting at once).
     */
    async setConnections (changes: Array<{ uuid: string, dataConnected: boolean, commandConnected: boolean }>, lastSeenAt: Date): Promise<void> {
      const groups = new Map<string, { dataConnected: boolean, commandConnected: boolean, uuids: string[] }>()
      for (const c of changes) {
        const key = `${c.dataConnected ? 1 : 0}${c.commandConnected ? 1 : 0}`
        let group = groups.get(key)
        if (group === undefined) groups.set(key, group = { dataConnected: c.dataConnected, commandConnected: c.commandConnected, uuids: [] })
        group.uuids.push(c.uuid)
      }
      for (const { dataConnected, commandConnected, uuids } of groups.values()) {
        await Robot.update({ dataConnected, commandConnected, lastSeenAt }, { where: { uuid: { [Op.in]: uuids } }, silent: true })
      }
    },

    /** Moves last_seen_at forward (frames; the caller coalesces). */
    async touch (uuids: string[], lastSeenAt: Date): Promise<void> {
      if (uuids.length === 0) return
      await Robot.update({ lastSeenAt }, { where: { uuid: { [Op.in]: uuids } }, silent: true })
    },

    matchSecret,

    /**
     * The robot whose serial and secret match (its secret, or its previous
     * one during a grace period), or null (a secret rotated out included).
     */
    async verifySecret (serial: string, secret: string): Promise<{ uuid: string, enabled: boolean } | null> {
      const match = await matchSecret(serial, secret)
      return match === null || match.secret === 'rotated-out' ? null : match.robot
    }
  }
}

export type RobotService = ReturnType<typeof createRobotService>
