// Users: accounts, passwords and staff/active flags. Every change is audited
// in the same transaction, and revocations are announced on the bus.
//
// Usernames are unique without regard to case, and log-in matches them the
// same way: `Alice` logs in as `alice`, and nobody can create `ALICE` beside
// her. The stored spelling is the user's name everywhere else (answers, JWT
// claims, the audit log). Names are compared with the database's lower() on
// both sides, the function the unique index of migration 012 is built on, so
// that the check and the index can never disagree.
import { col, fn, Op, UniqueConstraintError, where } from 'sequelize'
import type { Database } from '../db/index.js'
import type { User } from '../db/models/index.js'
import { Errors } from '../errors.js'
import type { EventBus } from '../events.js'
import type { AuditContext, AuditService } from './audit.js'
import { decodeCursor, pageLimit, toPage, type Page, type PageRequest } from './pagination.js'
import { hashSecret, verifyAgainstDummy, verifySecret } from './secrets.js'
import { checking } from './unavailable.js'

export interface UserView { id: number, username: string, is_staff: boolean, is_active: boolean }
export interface NewUser { username: string, password: string, isStaff?: boolean }
export interface UserPatch { password?: string, isStaff?: boolean, isActive?: boolean }

export function userView (row: User): UserView {
  return { id: row.id, username: row.username, is_staff: row.isStaff, is_active: row.isActive }
}

/** What a JWT is checked against: the user's flags and the version their tokens must carry. */
export interface UserCredentialState extends UserView { token_version: number }

export function createUserService ({ db, events, audit }: { db: Database, events: EventBus, audit: AuditService }) {
  const { User } = db.models

  async function find (id: number): Promise<User> {
    const user = await User.findByPk(id)
    if (user === null) throw new Errors.USER_NOT_FOUND()
    return user
  }

  const sameName = (username: string) => where(fn('lower', col('username')), fn('lower', username))

  /**
   * The user a typed name means. Names that differ only by case and were
   * stored before they had to be unique that way (migration 012 keeps them)
   * are told apart by their exact spelling; a spelling that matches none of
   * them exactly means nobody.
   */
  async function named (username: string): Promise<User | null> {
    const rows = await User.findAll({ where: sameName(username), order: [['id', 'ASC']] })
    if (rows.length <= 1) return rows[0] ?? null
    return rows.find((row) => row.username === username) ?? null
  }

  return {
    async create (input: NewUser, ctx: AuditContext): Promise<UserView> {
      const passwordHash = await hashSecret(input.password)
      try {
        return await db.transaction(async (transaction) => {
          // The unique index on lower(username) refuses a name that differs
          // only by case; this look-up also catches the names migration 012
          // kept outside it (and answers the same 409 on both databases).
          const taken = await User.findOne({ where: sameName(input.username), attributes: ['id'], transaction })
          if (taken !== null) throw new Errors.USERNAME_TAKEN()
          const user = await User.create({ username: input.username, passwordHash, isStaff: input.isStaff ?? false }, { transaction })
          await audit.record(ctx, { action: 'user.created', targetUserId: user.id, details: { username: user.username, is_staff: user.isStaff } }, transaction)
          return userView(user)
        })
      } catch (err) {
        if (err instanceof UniqueConstraintError) throw new Errors.USERNAME_TAKEN()
        throw err
      }
    },

    async get (id: number): Promise<UserView> {
      return userView(await find(id))
    },

    /**
     * The user with their token version (JWT checks); USER_NOT_FOUND when
     * gone, DATABASE_UNAVAILABLE when the database cannot say.
     */
    async credentialState (id: number): Promise<UserCredentialState> {
      const user = await checking(async () => await find(id))
      return { ...userView(user), token_version: user.tokenVersion }
    },

    /** Whether an active staff user exists (the start-up banner offers createsuperuser only when none does). */
    async hasActiveStaff (): Promise<boolean> {
      return await User.findOne({ where: { isStaff: true, isActive: true }, attributes: ['id'] }) !== null
    },

    async list (page: PageRequest = {}): Promise<Page<UserView>> {
      const limit = pageLimit(page.limit)
      const where = page.cursor === undefined ? {} : { id: { [Op.gt]: decodeCursor(page.cursor, ['number'])[0] } }
      const rows = await User.findAll({ where, order: [['id', 'ASC']], limit: limit + 1 })
      return toPage(rows, limit, userView, (row) => [row.id])
    },

    async update (id: number, patch: UserPatch, ctx: AuditContext): Promise<UserView> {
      const passwordHash = patch.password === undefined ? undefined : await hashSecret(patch.password)
      const updated = await db.transaction(async (transaction) => {
        const user = await User.findByPk(id, { transaction })
        if (user === null) throw new Errors.USER_NOT_FOUND()
        // A new password or a deactivation ends every JWT signed before it,
        // for good: a later reactivation does not bring them back (docs/protocol.md §2.4).
        if (passwordHash !== undefined || (patch.isActive === false && user.isActive)) user.tokenVersion = user.tokenVersion + 1
        if (passwordHash !== undefined) user.passwordHash = passwordHash
        if (patch.isStaff !== undefined) user.isStaff = patch.isStaff
        if (patch.isActive !== undefined) user.isActive = patch.isActive
        await user.save({ transaction })
        const details: Record<string, unknown> = {}
        if (patch.password !== undefined) details.password_changed = true
        if (patch.isStaff !== undefined) details.is_staff = patch.isStaff
        if (patch.isActive !== undefined) details.is_active = patch.isActive
        await audit.record(ctx, { action: 'user.updated', targetUserId: id, details }, transaction)
        return user
      })
      if (patch.isStaff !== undefined || patch.isActive !== undefined) events.emit('userChanged', { userId: id, isStaff: updated.isStaff, isActive: updated.isActive })
      if (patch.isActive === false) events.emit('userRevoked', { userId: id })
      if (patch.password !== undefined) events.emit('passwordChanged', { userId: id })
      return userView(updated)
    },

    async remove (id: number, ctx: AuditContext): Promise<void> {
      await db.transaction(async (transaction) => {
        const user = await User.findByPk(id, { transaction })
        if (user === null) throw new Errors.USER_NOT_FOUND()
        await user.destroy({ transaction })
        await audit.record(ctx, { action: 'user.deleted', targetUserId: id, details: { username: user.username } }, transaction)
      })
      events.emit('userRevoked', { userId: id })
    },

    /**
     * Checks a username (matched without regard to case) and password.
     * Unknown users cost the same query and the same scrypt as known ones (no
     * user enumeration by timing). Returns the user, active or not: the
     * caller decides what an inactive user gets. A database that cannot
     * answer throws DATABASE_UNAVAILABLE, never a refusal: the password was
     * not checked, so it is neither right nor wrong.
     */
    async verifyPassword (username: string, password: string): Promise<UserCredentialState | null> {
      const user = await checking(async () => await named(username))
      if (user === null) return await verifyAgainstDummy(password) || null
      return await verifySecret(password, user.passwordHash) ? { ...userView(user), token_version: user.tokenVersion } : null
    },

    /** The users with these ids, by id; unknown ids are left out. */
    async byIds (ids: number[]): Promise<UserView[]> {
      if (ids.length === 0) return []
      const rows = await User.findAll({ where: { id: { [Op.in]: ids } }, order: [['id', 'ASC']] })
      return rows.map(userView)
    },

    /** The user a typed name means, matched as log-in matches it. */
    async findByUsername (username: string): Promise<UserView | null> {
      const user = await named(username)
      return user === null ? null : userView(user)
    }
  }
}

export type UserService = ReturnType<typeof createUserService>
