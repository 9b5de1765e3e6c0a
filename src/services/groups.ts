// Groups of robots, granted to users as a whole (docs/protocol.md §13.2): a
// site's 300 robots to a shift of operators in one step. Staff business.
// Every change is one event, whatever the number of robots or users it
// touches: each node's broker updates its one copy of the group.
import { Op, QueryTypes, UniqueConstraintError } from 'sequelize'
import type { Role } from '../contract/roles.js'
import { dateParam, type Database } from '../db/index.js'
import { Errors } from '../errors.js'
import type { EventBus } from '../events.js'
import { checkExpiry, iso, type GrantInput } from './access.js'
import type { AuditContext, AuditService } from './audit.js'

export interface GroupView { id: number, name: string, created_at: string }
export interface GroupDetail extends GroupView {
  robots: string[]
  users: Array<{ user_id: number, username: string, role: Role, expires_at: string | null }>
}

export function createGroupService ({ db, events, audit }: { db: Database, events: EventBus, audit: AuditService }) {
  const { Group, GroupRobot, GroupGrant, Robot, User } = db.models
  const view = (g: { id: number, name: string, createdAt: Date }): GroupView => ({ id: g.id, name: g.name, created_at: g.createdAt.toISOString() })

  async function group (id: number) {
    const g = await Group.findByPk(id)
    if (g === null) throw new Errors.GROUP_NOT_FOUND()
    return g
  }

  async function named<T> (work: () => Promise<T>): Promise<T> {
    try {
      return await work()
    } catch (err) {
      if (err instanceof UniqueConstraintError) throw new Errors.GROUP_NAME_TAKEN()
      throw err
    }
  }

  return {
    async create (name: string, ctx: AuditContext): Promise<GroupView> {
      const trimmed = name.trim()
      if (trimmed === '') throw new Errors.BAD_REQUEST('name must not be empty')
      return await named(async () => await db.transaction(async (transaction) => {
        const g = await Group.create({ name: trimmed }, { transaction })
        await audit.record(ctx, { action: 'group.created', details: { group_id: g.id, group: g.name } }, transaction)
        return view(g)
      }))
    },

    async list (): Promise<GroupView[]> {
      return (await Group.findAll({ order: [['id', 'ASC']] })).map(view)
    },

    async get (id: number): Promise<GroupDetail> {
      const g = await group(id)
      const [robots, users] = await Promise.all([
        db.sequelize.query('SELECT r.uuid FROM group_robots gr JOIN robots r ON r.id = gr.robot_id WHERE gr.group_id = $1 ORDER BY r.id', { type: QueryTypes.SELECT, bind: [id] }),
        db.sequelize.query(`SELECT g.user_id, u.username, g.role, g.expires_at FROM group_grants g JOIN users u ON u.id = g.user_id
WHERE g.group_id = $1 AND (g.expires_at IS NULL OR g.expires_at > $2) ORDER BY g.user_id`, { type: QueryTypes.SELECT, bind: [id, dateParam(db.dialect, new Date())] })
      ]) as [Array<{ uuid: string }>, Array<{ user_id: number, username: string, role: Role, expires_at: unknown }>]
      return {
        ...view(g),
        robots: robots.map((r) => r.uuid),
        users: users.map((u) => ({ user_id: Number(u.user_id), username: u.username, role: u.role, expires_at: iso(u.expires_at as Date | null) }))
      }
    },

    /** Robots and unexpired grants per group: two grouped reads, whatever the number of groups (the admin list). */
    async counts (): Promise<{ robots: Map<number, number>, users: Map<number, number> }> {
      const [r, u] = await Promise.all([
        db.sequelize.query('SELECT group_id, COUNT(*) AS n FROM group_robots GROUP BY group_id', { type: QueryTypes.SELECT }),
        db.sequelize.query('SELECT group_id, COUNT(*) AS n FROM group_grants WHERE expires_at IS NULL OR expires_at > $1 GROUP BY group_id', { type: QueryTypes.SELECT, bind: [dateParam(db.dialect, new Date())] })
      ]) as [Array<{ group_id: unknown, n: unknown }>, Array<{ group_id: unknown, n: unknown }>]
      const map = (rows: Array<{ group_id: unknown, n: unknown }>): Map<number, number> => new Map(rows.map((x) => [Number(x.group_id), Number(x.n)]))
      return { robots: map(r), users: map(u) }
    },

    /** A group's robots with their serial, name and enabled flag, in one read (the admin group page). */
    async robotsIn (id: number): Promise<Array<{ uuid: string, serial: string, name: string, enabled: boolean }>> {
      const rows = await db.sequelize.query('SELECT r.uuid, r.serial, r.name, r.enabled FROM group_robots gr JOIN robots r ON r.id = gr.robot_id WHERE gr.group_id = $1 ORDER BY r.id',
        { type: QueryTypes.SELECT, bind: [id] }) as Array<{ uuid: string, serial: string, name: string, enabled: unknown }>
      return rows.map((r) => ({ uuid: r.uuid, serial: r.serial, name: r.name, enabled: Boolean(r.enabled) }))
    },

    /** The groups that hold a robot (the admin robot page). */
    async ofRobot (robotUuid: string): Promise<GroupView[]> {
      const rows = await db.sequelize.query('SELECT g.id, g.name, g.created_at FROM groups g JOIN group_robots gr ON gr.group_id = g.id JOIN robots r ON r.id = gr.robot_id WHERE r.uuid = $1 ORDER BY g.name',
        { type: QueryTypes.SELECT, bind: [robotUuid] }) as Array<{ id: number, name: string, created_at: unknown }>
      return rows.map((r) => ({ id: Number(r.id), name: r.name, created_at: iso(r.created_at as Date) as string }))
    },

    /** The unexpired group grants of a user (the admin user page). */
    async grantsOfUser (userId: number): Promise<Array<{ group_id: number, name: string, role: Role, expires_at: string | null }>> {
      const rows = await db.sequelize.query('SELECT g.id, g.name, gg.role, gg.expires_at FROM group_grants gg JOIN groups g ON g.id = gg.group_id WHERE gg.user_id = $1 ORDER BY g.name',
        { type: QueryTypes.SELECT, bind: [userId] }) as Array<{ id: number, name: string, role: Role, expires_at: unknown }>
      const now = Date.now()
      return rows.map((r) => ({ group_id: Number(r.id), name: r.name, role: r.role, expires_at: iso(r.expires_at as Date | null) }))
        .filter((r) => r.expires_at === null || Date.parse(r.expires_at) > now)
    },

    async remove (id: number, ctx: AuditContext): Promise<void> {
      await db.transaction(async (transaction) => {
        const g = await Group.findByPk(id, { transaction })
        if (g === null) throw new Errors.GROUP_NOT_FOUND()
        const holders = await GroupGrant.findAll({ where: { groupId: id }, transaction })
        // Grants that ended and were not swept yet: audited as the sweep would have (once), not as revoked.
        const now = Date.now()
        const ended = holders.filter((h) => h.expiresAt !== null && h.expiresAt.getTime() <= now)
        if (ended.length > 0) {
          const names = new Map((await User.findAll({ where: { id: ended.map((h) => h.userId) }, attributes: ['id', 'username'], transaction })).map((u) => [u.id, u.username]))
          for (const h of ended) await audit.record({ actor: null }, { action: 'access.expired', targetUserId: h.userId, details: { username: names.get(h.userId), role: h.role, expires_at: iso(h.expiresAt), group_id: id, group: g.name } }, transaction)
        }
        // SQLite enforces the cascade only with foreign keys on: explicit deletes hold on both.
        await GroupGrant.destroy({ where: { groupId: id }, transaction })
        await GroupRobot.destroy({ where: { groupId: id }, transaction })
        await g.destroy({ transaction })
        await audit.record(ctx, { action: 'group.deleted', details: { group_id: id, group: g.name, users: holders.filter((h) => !ended.includes(h)).map((h) => h.userId) } }, transaction)
      })
      events.emit('groupDeleted', { groupId: id })
    },

    /** Puts a robot in a group (idempotent). */
    async addRobot (id: number, robotUuid: string, ctx: AuditContext): Promise<void> {
      const g = await group(id)
      const robot = await Robot.findOne({ where: { uuid: robotUuid }, attributes: ['id', 'uuid', 'serial'] })
      if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
      const added = await db.transaction(async (transaction) => {
        const [, created] = await GroupRobot.findOrCreate({ where: { groupId: id, robotId: robot.id }, transaction })
        if (created) await audit.record(ctx, { action: 'group.robot_added', robotUuid, details: { group_id: id, group: g.name, serial: robot.serial } }, transaction)
        return created
      })
      if (added) events.emit('groupRobotsChanged', { groupId: id, robotUuids: [robotUuid], added: true })
    },

    /** Takes a robot out of a group (idempotent). */
    async removeRobot (id: number, robotUuid: string, ctx: AuditContext): Promise<void> {
      const g = await group(id)
      const robot = await Robot.findOne({ where: { uuid: robotUuid }, attributes: ['id', 'uuid', 'serial'] })
      if (robot === null) throw new Errors.ROBOT_NOT_FOUND()
      const removed = await db.transaction(async (transaction) => {
        const n = await GroupRobot.destroy({ where: { groupId: id, robotId: robot.id }, transaction })
        if (n > 0) await audit.record(ctx, { action: 'group.robot_removed', robotUuid, details: { group_id: id, group: g.name, serial: robot.serial } }, transaction)
        return n > 0
      })
      if (removed) events.emit('groupRobotsChanged', { groupId: id, robotUuids: [robotUuid], added: false })
    },

    /** Grants a user a role on every robot of the group (default operator); a second grant replaces it. */
    async grant (id: number, userId: number, input: GrantInput, ctx: AuditContext): Promise<void> {
      const role = input.role ?? 'operator'
      const expiresAt = checkExpiry(input.expiresAt)
      const [g, user] = await Promise.all([group(id), User.findByPk(userId)])
      if (user === null) throw new Errors.USER_NOT_FOUND()
      const changed = await db.transaction(async (transaction) => {
        let existing = await GroupGrant.findOne({ where: { groupId: id, userId }, transaction, lock: transaction.LOCK.UPDATE })
        // Expired, not swept yet: removed and audited as the sweep would (once), so the new one is a grant, not a change.
        if (existing?.expiresAt != null && existing.expiresAt.getTime() <= Date.now()) {
          const gone = await GroupGrant.destroy({ where: { groupId: id, userId, expiresAt: { [Op.lte]: new Date() } }, transaction })
          if (gone > 0) await audit.record({ actor: null }, { action: 'access.expired', targetUserId: userId, details: { username: user.username, role: existing.role, expires_at: iso(existing.expiresAt), group_id: id, group: g.name } }, transaction)
          existing = null
        }
        const before = existing === null ? null : { role: existing.role, expires_at: iso(existing.expiresAt) }
        if (before !== null && before.role === role && before.expires_at === iso(expiresAt)) return false
        if (existing === null) await GroupGrant.create({ groupId: id, userId, role, expiresAt }, { transaction })
        else await GroupGrant.update({ role, expiresAt }, { where: { groupId: id, userId }, transaction })
        await audit.record(ctx, {
          action: existing === null ? 'group.granted' : 'group.grant_changed',
          targetUserId: userId,
          details: { group_id: id, group: g.name, username: user.username, role, expires_at: iso(expiresAt), ...(before === null ? {} : { was: before }) }
        }, transaction)
        return true
      })
      if (changed) events.emit('groupGrantChanged', { groupId: id, userId, role, expiresAt: iso(expiresAt) })
    },

    /** Removes a user's grant on the group (idempotent). */
    async revoke (id: number, userId: number, ctx: AuditContext): Promise<void> {
      const [g, user] = await Promise.all([group(id), User.findByPk(userId)])
      if (user === null) throw new Errors.USER_NOT_FOUND()
      const removed = await db.transaction(async (transaction) => {
        // An expired grant is left to the sweep, which audits it as access.expired (nothing is revoked).
        const n = await GroupGrant.destroy({ where: { groupId: id, userId, [Op.or]: [{ expiresAt: null }, { expiresAt: { [Op.gt]: new Date() } }] }, transaction })
        if (n > 0) await audit.record(ctx, { action: 'group.revoked', targetUserId: userId, details: { group_id: id, group: g.name, username: user.username } }, transaction)
        return n > 0
      })
      if (removed) events.emit('groupGrantChanged', { groupId: id, userId, role: null, expiresAt: null })
    }
  }
}

export type GroupService = ReturnType<typeof createGroupService>
