// Who may see, command and manage which robot (docs/protocol.md §3, §13): a
// user's effective role on a robot is the highest of their direct grant and
// their grants on the groups that hold it, expired ones left out. Staff see
// every robot. A robot a user holds no role on and a robot that does not
// exist get the same 404; a role too low for the action, 403
// UNITED_ROLE_REQUIRED.
//
// The SQL rule lives in one place (holdsRoleSql, roleColumnsSql): the command
// path, the robots list and every check below use it. The broker holds the
// same rule in memory (broker/access-cache.ts), fed by the events emitted here.
import { Op, QueryTypes, type Transaction } from 'sequelize'
import { atLeast, higher, isRole, ROLES, rolesFrom, type Role } from '../contract/roles.js'
import { dateParam, rawDate, type Database } from '../db/index.js'
import { Errors } from '../errors.js'
import type { EventBus } from '../events.js'
import type { AuditContext, AuditService } from './audit.js'
import { decodeCursor, pageLimit, toPage, type Page, type PageRequest } from './pagination.js'

/** An authenticated user, as every service sees them; `apiKeyId` when an API key authenticated them. */
export interface UserPrincipal { id: number, username: string, isStaff: boolean, apiKeyId?: string }

/** What other services need of a robot they were allowed to touch, with the role that allowed it. */
export interface RobotRef { id: number, uuid: string, enabled: boolean, state: string, role: Role | 'staff' }

/** A grant's role and end, as the API takes it. */
export interface GrantInput { role?: Role, expiresAt?: Date | null }

export interface GrantView { user_id: number, username: string, role: Role, expires_at: string | null }

/**
 * SQL: true when user `user` holds at least `need` on robot `robot` at `now`,
 * directly or through a group. The arguments are SQL expressions (columns or
 * bind parameters), never values.
 */
export function holdsRoleSql ({ robot, user, now, need = 'viewer' }: { robot: string, user: string, now: string, need?: Role }): string {
  const roles = rolesFrom(need).map((r) => `'${r}'`).join(', ')
  return `(EXISTS (SELECT 1 FROM robot_access a WHERE a.robot_id = ${robot} AND a.user_id = ${user} AND a.role IN (${roles}) AND (a.expires_at IS NULL OR a.expires_at > ${now}))
  OR EXISTS (SELECT 1 FROM group_robots gr JOIN group_grants g ON g.group_id = gr.group_id WHERE gr.robot_id = ${robot} AND g.user_id = ${user} AND g.role IN (${roles}) AND (g.expires_at IS NULL OR g.expires_at > ${now})))`
}

const RANK_SQL = (column: string): string => `CASE ${column} ${ROLES.map((r, i) => `WHEN '${r}' THEN ${i + 1}`).join(' ')} END`

/** SQL: two columns, `direct_rank` and `group_rank`, the highest unexpired role of each kind (1 = viewer … 3 = manager, null = none). */
export function roleColumnsSql ({ robot, user, now }: { robot: string, user: string, now: string }): string {
  return `(SELECT MAX(${RANK_SQL('a.role')}) FROM robot_access a WHERE a.robot_id = ${robot} AND a.user_id = ${user} AND (a.expires_at IS NULL OR a.expires_at > ${now})) AS direct_rank,
  (SELECT MAX(${RANK_SQL('g.role')}) FROM group_robots gr JOIN group_grants g ON g.group_id = gr.group_id WHERE gr.robot_id = ${robot} AND g.user_id = ${user} AND (g.expires_at IS NULL OR g.expires_at > ${now})) AS group_rank`
}

/** The role of the two rank columns of roleColumnsSql. */
export function roleOfRanks (row: { direct_rank?: unknown, group_rank?: unknown }): Role | null {
  const role = (rank: unknown): Role | null => rank === null || rank === undefined ? null : ROLES[Number(rank) - 1] ?? null
  return higher(role(row.direct_rank), role(row.group_rank))
}

/** An ISO 8601 time or null, for the API. */
export const iso = (d: Date | string | null | undefined): string | null => d === null || d === undefined ? null : rawDate(d).toISOString()

/** Refuses an expiry in the past (400): a grant must start alive. */
export function checkExpiry (expiresAt: Date | null | undefined, now = Date.now()): Date | null {
  if (expiresAt === null || expiresAt === undefined) return null
  if (Number.isNaN(expiresAt.getTime())) throw new Errors.BAD_REQUEST('expires_at is not a valid date-time')
  if (expiresAt.getTime() <= now) throw new Errors.BAD_REQUEST('expires_at is in the past')
  return expiresAt
}

/** How often expired grants are removed and audited (their effect needs no sweep: every check compares the time). */
export const EXPIRY_SWEEP_MS = 1000

export function createAccessService ({ db, events, audit }: { db: Database, events: EventBus, audit: AuditService }) {
  const { Robot, RobotAccess, User } = db.models
  const now = (): Date | string => dateParam(db.dialect, new Date())

  async function both (userId: number, robotUuid: string) {
    const [user, robot] = await Promise.all([User.findByPk(userId), Robot.findOne({ where: { uuid: robotUuid } })])
    if (user === null) throw new Errors.USER_NOT_FOUND()
    if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
    return { user, robot }
  }

  /** The robot and this user's effective role on it (null: none), in one query. */
  async function lookup (principal: UserPrincipal, robotUuid: string): Promise<{ robot: Omit<RobotRef, 'role'>, role: Role | 'staff' | null } | null> {
    const rows = await db.sequelize.query(`SELECT r.id, r.uuid, r.enabled, r.state${principal.isStaff ? '' : `, ${roleColumnsSql({ robot: 'r.id', user: '$2', now: '$3' })}`}
FROM robots r WHERE r.uuid = $1`, { type: QueryTypes.SELECT, bind: principal.isStaff ? [robotUuid] : [robotUuid, principal.id, now()] }) as Array<{ id: number, uuid: string, enabled: boolean | number, state: string, direct_rank?: unknown, group_rank?: unknown }>
    const row = rows[0]
    if (row === undefined) return null
    const robot = { id: Number(row.id), uuid: row.uuid, enabled: Boolean(row.enabled), state: row.state }
    return { robot, role: principal.isStaff ? 'staff' : roleOfRanks(row) }
  }

  /** Writes a direct grant (insert or replace), audited; emits the change after the commit. */
  async function writeGrant (user: { id: number, username: string }, robot: { id: number, uuid: string, serial: string }, input: GrantInput, ctx: AuditContext): Promise<void> {
    const role = input.role ?? 'operator'
    const expiresAt = checkExpiry(input.expiresAt)
    const changed = await db.transaction(async (transaction) => {
      // Locked (PostgreSQL): the expiry sweep's DELETE waits for this write and then sees its new end.
      let existing = await RobotAccess.findOne({ where: { userId: user.id, robotId: robot.id }, transaction, lock: transaction.LOCK.UPDATE })
      // Expired, not swept yet: removed and audited as the sweep would (once), so the new one is a grant, not a change.
      if (existing?.expiresAt != null && existing.expiresAt.getTime() <= Date.now()) {
        const gone = await RobotAccess.destroy({ where: { userId: user.id, robotId: robot.id, expiresAt: { [Op.lte]: new Date() } }, transaction })
        if (gone > 0) await audit.record({ actor: null }, { action: 'access.expired', robotUuid: robot.uuid, targetUserId: user.id, details: { username: user.username, role: existing.role, expires_at: iso(existing.expiresAt), serial: robot.serial } }, transaction)
        existing = null
      }
      const before = existing === null ? null : { role: existing.role, expires_at: iso(existing.expiresAt) }
      if (before !== null && before.role === role && before.expires_at === iso(expiresAt)) return false
      if (existing === null) await RobotAccess.create({ userId: user.id, robotId: robot.id, role, expiresAt }, { transaction })
      else await RobotAccess.update({ role, expiresAt }, { where: { userId: user.id, robotId: robot.id }, transaction })
      await audit.record(ctx, {
        action: existing === null ? 'access.granted' : 'access.changed',
        robotUuid: robot.uuid,
        targetUserId: user.id,
        details: { username: user.username, serial: robot.serial, role, expires_at: iso(expiresAt), ...(before === null ? {} : { was: before }) }
      }, transaction)
      return true
    })
    if (changed) events.emit('accessChanged', { userId: user.id, robotUuid: robot.uuid, granted: true, role, expiresAt: iso(expiresAt) })
  }

  async function removeGrant (user: { id: number, username: string }, robot: { id: number, uuid: string, serial: string }, ctx: AuditContext): Promise<void> {
    const changed = await db.transaction(async (transaction) => {
      // An expired grant is left to the sweep, which audits it as access.expired (nothing is revoked).
      const removed = await RobotAccess.destroy({ where: { userId: user.id, robotId: robot.id, [Op.or]: [{ expiresAt: null }, { expiresAt: { [Op.gt]: new Date() } }] }, transaction })
      if (removed > 0) await audit.record(ctx, { action: 'access.revoked', robotUuid: robot.uuid, targetUserId: user.id, details: { username: user.username, serial: robot.serial } }, transaction)
      return removed > 0
    })
    if (changed) events.emit('accessChanged', { userId: user.id, robotUuid: robot.uuid, granted: false, role: null, expiresAt: null })
  }

  /** A manager's target: an active non-staff user by username (any case); anyone else is 404. */
  async function grantee (username: string) {
    const user = await User.findOne({ where: db.sequelize.where(db.sequelize.fn('lower', db.sequelize.col('username')), username.toLowerCase()) })
    if (user === null || user.isStaff || !user.isActive) throw new Errors.USER_NOT_FOUND()
    return user
  }

  async function managed (principal: UserPrincipal, robotUuid: string) {
    const ref = await robotFor(principal, robotUuid, 'manager')
    const robot = await Robot.findByPk(ref.id)
    if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
    return robot
  }

  /**
   * The robot if `principal` holds at least `need` on it: 404 with no role
   * (no existence leak), 403 UNITED_ROLE_REQUIRED with too low a role. The
   * command path applies the same rule in SQL (holdsRoleSql in commands.ts).
   */
  async function robotFor (principal: UserPrincipal, robotUuid: string, need: Role = 'viewer'): Promise<RobotRef> {
    const found = await lookup(principal, robotUuid)
    if (found === null || found.role === null) throw new Errors.ROBOT_NOT_FOUND()
    if (found.role !== 'staff' && !atLeast(found.role, need)) throw new Errors.ROLE_REQUIRED(need)
    return { ...found.robot, role: found.role }
  }

  /** Expired grants of one kind, removed and audited once (whichever node removes them), then announced. */
  async function expireTable (table: 'robot_access' | 'group_grants', at: Date): Promise<number> {
    const bind = [dateParam(db.dialect, at)]
    // A cheap indexed look first: most seconds nothing expires, and on SQLite a
    // DELETE would queue behind the frame writer for nothing.
    const due = await db.sequelize.query(`SELECT 1 AS x FROM ${table} WHERE expires_at <= $1 LIMIT 1`, { type: QueryTypes.SELECT, bind })
    if (due.length === 0) return 0
    const removed = await db.transaction(async (transaction: Transaction) => {
      const key = table === 'robot_access' ? 'robot_id' : 'group_id'
      const [rows] = await db.sequelize.query(`DELETE FROM ${table} WHERE expires_at <= $1 RETURNING user_id, ${key} AS target, role, expires_at`, { bind, transaction }) as unknown as [Array<{ user_id: number, target: number, role: string, expires_at: unknown }>]
      if (rows.length === 0) return []
      const userIds = [...new Set(rows.map((r) => Number(r.user_id)))]
      const targets = [...new Set(rows.map((r) => Number(r.target)))]
      const names = new Map((await User.findAll({ where: { id: userIds }, attributes: ['id', 'username'], transaction })).map((u) => [u.id, u.username]))
      const targetRows = table === 'robot_access'
        ? (await Robot.findAll({ where: { id: targets }, attributes: ['id', 'uuid', 'serial'], transaction })).map((r) => ({ id: r.id, uuid: r.uuid, label: r.serial }))
        : (await db.models.Group.findAll({ where: { id: targets }, attributes: ['id', 'name'], transaction })).map((g) => ({ id: g.id, uuid: null, label: g.name }))
      const byId = new Map(targetRows.map((t) => [t.id, t]))
      const out: Array<{ userId: number, target: number, uuid: string | null }> = []
      for (const row of rows) {
        const userId = Number(row.user_id)
        const target = byId.get(Number(row.target))
        const details: Record<string, unknown> = { username: names.get(userId), role: row.role, expires_at: iso(row.expires_at as Date) }
        if (table === 'robot_access') details.serial = target?.label
        else { details.group_id = Number(row.target); details.group = target?.label }
        await audit.record({ actor: null }, { action: 'access.expired', robotUuid: target?.uuid ?? undefined, targetUserId: userId, details }, transaction)
        out.push({ userId, target: Number(row.target), uuid: target?.uuid ?? null })
      }
      return out
    })
    for (const r of removed) {
      if (table === 'robot_access' && r.uuid !== null) events.emit('accessChanged', { userId: r.userId, robotUuid: r.uuid, granted: false, role: null, expiresAt: null })
      else if (table === 'group_grants') events.emit('groupGrantChanged', { groupId: r.target, userId: r.userId, role: null, expiresAt: null })
    }
    return removed.length
  }

  return {
    robotFor,

    /** This user's effective role on each of these robots, by uuid (robots without one are absent). */
    async rolesOn (userId: number, robotUuids: string[]): Promise<Map<string, Role>> {
      const out = new Map<string, Role>()
      if (robotUuids.length === 0) return out
      const list = robotUuids.map((_, i) => `$${i + 3}`).join(', ')
      const rows = await db.sequelize.query(`SELECT r.uuid, ${roleColumnsSql({ robot: 'r.id', user: '$1', now: '$2' })} FROM robots r WHERE r.uuid IN (${list})`,
        { type: QueryTypes.SELECT, bind: [userId, now(), ...robotUuids] }) as Array<{ uuid: string, direct_rank: unknown, group_rank: unknown }>
      for (const row of rows) {
        const role = roleOfRanks(row)
        if (role !== null) out.set(row.uuid, role)
      }
      return out
    },

    /** The robots a user holds any role on now, by uuid (docs/protocol.md §6.1 `/users/me`). */
    async visibleUuids (userId: number): Promise<string[]> {
      const rows = await db.sequelize.query(`SELECT r.uuid FROM robots r WHERE ${holdsRoleSql({ robot: 'r.id', user: '$1', now: '$2' })} ORDER BY r.id`,
        { type: QueryTypes.SELECT, bind: [userId, now()] }) as Array<{ uuid: string }>
      return rows.map((r) => r.uuid)
    },

    /**
     * What the broker keeps of a connected user (broker/access-cache.ts):
     * their unexpired direct grants and group grants.
     */
    async viewOf (userId: number): Promise<{ direct: Array<{ robotUuid: string, role: Role, expiresAt: string | null }>, groups: Array<{ groupId: number, role: Role, expiresAt: string | null }> }> {
      const bind = [userId, now()]
      const [direct, groups] = await Promise.all([
        db.sequelize.query('SELECT r.uuid, a.role, a.expires_at FROM robot_access a JOIN robots r ON r.id = a.robot_id WHERE a.user_id = $1 AND (a.expires_at IS NULL OR a.expires_at > $2)', { type: QueryTypes.SELECT, bind }),
        db.sequelize.query('SELECT g.group_id, g.role, g.expires_at FROM group_grants g WHERE g.user_id = $1 AND (g.expires_at IS NULL OR g.expires_at > $2)', { type: QueryTypes.SELECT, bind })
      ]) as [Array<{ uuid: string, role: string, expires_at: unknown }>, Array<{ group_id: number, role: string, expires_at: unknown }>]
      return {
        direct: direct.filter((r) => isRole(r.role)).map((r) => ({ robotUuid: r.uuid, role: r.role as Role, expiresAt: iso(r.expires_at as Date | null) })),
        groups: groups.filter((g) => isRole(g.role)).map((g) => ({ groupId: Number(g.group_id), role: g.role as Role, expiresAt: iso(g.expires_at as Date | null) }))
      }
    },

    /** The uuids of a group's robots (the broker's copy of a group). */
    async groupRobotUuids (groupId: number): Promise<string[]> {
      const rows = await db.sequelize.query('SELECT r.uuid FROM group_robots gr JOIN robots r ON r.id = gr.robot_id WHERE gr.group_id = $1', { type: QueryTypes.SELECT, bind: [groupId] }) as Array<{ uuid: string }>
      return rows.map((r) => r.uuid)
    },

    /**
     * Grants a user a role on a robot (default operator), until `expiresAt`;
     * a second grant replaces the role and the expiry. Idempotent: the same
     * grant again changes and audits nothing.
     */
    async grant (userId: number, robotUuid: string, input: GrantInput | AuditContext, ctx?: AuditContext): Promise<void> {
      // (userId, uuid, ctx) is the operator grant of before roles existed.
      const [grant, context] = ctx === undefined ? [{}, input as AuditContext] : [input as GrantInput, ctx]
      const { user, robot } = await both(userId, robotUuid)
      await writeGrant(user, robot, grant, context)
    },

    /** Idempotent: revoking a grant that does not exist is not an error. */
    async revoke (userId: number, robotUuid: string, ctx: AuditContext): Promise<void> {
      const { user, robot } = await both(userId, robotUuid)
      await removeGrant(user, robot, ctx)
    },

    /** The direct grants of a robot, by user id (the Management API). */
    async grantsOf (robotUuid: string): Promise<GrantView[]> {
      const robot = await Robot.findOne({ where: { uuid: robotUuid }, attributes: ['id'] })
      if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
      const rows = await db.sequelize.query(`SELECT a.user_id, u.username, a.role, a.expires_at FROM robot_access a JOIN users u ON u.id = a.user_id
WHERE a.robot_id = $1 AND (a.expires_at IS NULL OR a.expires_at > $2) ORDER BY a.user_id`, { type: QueryTypes.SELECT, bind: [robot.id, now()] }) as Array<{ user_id: number, username: string, role: Role, expires_at: unknown }>
      return rows.map((r) => ({ user_id: Number(r.user_id), username: r.username, role: r.role, expires_at: iso(r.expires_at as Date | null) }))
    },

    /** The ids of the users granted a robot directly. */
    async usersOf (robotUuid: string): Promise<number[]> {
      return (await this.grantsOf(robotUuid)).map((g) => g.user_id)
    },

    /** Managers (docs/protocol.md §13.3): a robot's direct grants, by username, a page at a time. */
    async managerList (principal: UserPrincipal, robotUuid: string, page: PageRequest = {}): Promise<Page<{ username: string, role: Role, expires_at: string | null }>> {
      const robot = await robotFor(principal, robotUuid, 'manager')
      const limit = pageLimit(page.limit)
      const after = page.cursor === undefined ? 0 : decodeCursor(page.cursor, ['number'])[0] as number
      const rows = await db.sequelize.query(`SELECT a.user_id, u.username, a.role, a.expires_at FROM robot_access a JOIN users u ON u.id = a.user_id
WHERE a.robot_id = $1 AND (a.expires_at IS NULL OR a.expires_at > $2) AND a.user_id > $3 ORDER BY a.user_id LIMIT $4`, { type: QueryTypes.SELECT, bind: [robot.id, now(), after, limit + 1] }) as Array<{ user_id: number, username: string, role: Role, expires_at: unknown }>
      return toPage(rows, limit, (r) => ({ username: r.username, role: r.role, expires_at: iso(r.expires_at as Date | null) }), (r) => [Number(r.user_id)])
    },

    /** A manager grants an active non-staff user a role on a robot they manage. */
    async managerPut (principal: UserPrincipal, robotUuid: string, username: string, input: GrantInput, ctx: AuditContext): Promise<void> {
      const robot = await managed(principal, robotUuid)
      checkExpiry(input.expiresAt)
      const user = await grantee(username)
      await writeGrant(user, robot, input, ctx)
    },

    async managerDelete (principal: UserPrincipal, robotUuid: string, username: string, ctx: AuditContext): Promise<void> {
      const robot = await managed(principal, robotUuid)
      const user = await grantee(username)
      await removeGrant(user, robot, ctx)
    },

    /**
     * Removes the grants (direct and group) that expired by `at`, audits each
     * as `access.expired` once, and announces them. Run every second on
     * every node: two nodes at once remove each row once (DELETE … RETURNING).
     */
    async expireDue (at = new Date()): Promise<number> {
      return await expireTable('robot_access', at) + await expireTable('group_grants', at)
    }
  }
}

export type AccessService = ReturnType<typeof createAccessService>
