// Admin sessions (docs/admin.md): staff log in with a password and get a random
// token in a cookie. The database keeps only the token's SHA-256, so sessions
// survive a restart, are shared by every node of a cluster, and end for good
// on log-out, on deactivation, on losing the staff flag and on a password change.
import { Op } from 'sequelize'
import type { Database } from '../db/index.js'
import { Errors } from '../errors.js'
import type { EventBus } from '../events.js'
import type { AuditContext, AuditService } from './audit.js'
import { randomToken } from './secrets.js'
import { tokenKey } from './token-store.js'
import { userView, type UserService, type UserView } from './users.js'

export interface SessionServiceDeps {
  db: Database
  events: EventBus
  audit: AuditService
  users: UserService
  ttlSeconds: number
}

export interface AdminSessionView { id: string, user: UserView }

export function createSessionService ({ db, events, audit, users, ttlSeconds }: SessionServiceDeps) {
  const { AdminSession, User } = db.models

  /** Ends every session of a user. */
  async function endAll (userId: number): Promise<void> {
    await AdminSession.destroy({ where: { userId } })
  }

  // A deactivated or deleted user, one who lost the staff flag, or one whose
  // password changed, is logged out everywhere, for good (giving the flag back
  // does not revive an old cookie). A failure here is harmless for deactivation
  // and the staff flag (resolve checks both on every request) and only leaves
  // sessions to expire for a password change.
  const end = ({ userId }: { userId: number }): void => { endAll(userId).catch(() => {}) }
  events.on('userRevoked', end)
  events.on('passwordChanged', end)
  events.on('userChanged', ({ userId, isStaff }) => { if (!isStaff) end({ userId }) })

  return {
    /**
     * Checks a staff log-in. Wrong credentials, an inactive user and a user
     * who is not staff all get the same INVALID_CREDENTIALS, after the same
     * scrypt work: the form reveals nothing about which names exist or who is staff.
     */
    async login (username: string, password: string, ctx: Omit<AuditContext, 'actor'>): Promise<{ token: string, user: UserView }> {
      const user = await users.verifyPassword(username, password)
      if (user === null || !user.is_active || !user.is_staff) {
        // A wrong password is recorded against the account it tried, so that
        // the audit log filtered by that user shows it.
        const target = user ?? await users.findByUsername(username)
        await audit.record({ ...ctx, actor: null }, { action: 'user.login_failed', targetUserId: target?.id, details: { username: username.slice(0, 150), via: 'admin' } })
        throw new Errors.INVALID_CREDENTIALS()
      }
      const token = randomToken(32)
      const now = new Date()
      await db.transaction(async (transaction) => {
        // Expired rows are swept here, so the table holds live sessions only.
        await AdminSession.destroy({ where: { expiresAt: { [Op.lte]: now } }, transaction })
        await AdminSession.create({ id: tokenKey(token), userId: user.id, ip: ctx.ip?.slice(0, 64) ?? null, createdAt: now, expiresAt: new Date(now.getTime() + ttlSeconds * 1000) }, { transaction })
        await audit.record({ ...ctx, actor: { id: user.id, username: user.username } }, { action: 'user.login', targetUserId: user.id, details: { via: 'admin' } }, transaction)
      })
      return { token, user }
    },

    /** The live session of a cookie token, with its user as they are now; null otherwise. */
    async resolve (token: string): Promise<AdminSessionView | null> {
      if (!/^[0-9a-f]{64}$/.test(token)) return null
      const session = await AdminSession.findByPk(tokenKey(token))
      if (session === null || session.expiresAt.getTime() <= Date.now()) return null
      const user = await User.findByPk(session.userId)
      if (user === null || !user.isActive || !user.isStaff) return null
      return { id: session.id, user: userView(user) }
    },

    async logout (token: string): Promise<void> {
      if (!/^[0-9a-f]{64}$/.test(token)) return
      await AdminSession.destroy({ where: { id: tokenKey(token) } })
    },

    endAll
  }
}

export type SessionService = ReturnType<typeof createSessionService>
