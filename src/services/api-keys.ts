// API keys (docs/protocol.md §13.4): long-lived credentials for scripts,
// dashboards and integrations. A key acts as its user wherever an access JWT
// does (REST, the Management API, MQTT), except that it cannot make keys.
//
// A key is `uk_` + base64url of 32 random bytes, shown once. Stored: its
// first 16 characters after the prefix (`lookup`, unique) and the SHA-256 of
// the whole key; a long random string needs no slow hash. It ends when
// deleted, at its expires_at, and when its user's token version moves on
// (password change, deactivation) or the user is deleted. A deleted key is
// remembered for DELETED_KEY_MEMORY_MS, so that presenting it is a revoked
// credential (counted toward no log-in limit), not a guess.
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { Op, QueryTypes } from 'sequelize'
import { dateParam, type Database } from '../db/index.js'
import { Errors, isError } from '../errors.js'
import type { EventBus } from '../events.js'
import { checkExpiry, iso, type UserPrincipal } from './access.js'
import type { AuditContext, AuditService } from './audit.js'
import type { AuthService } from './auth.js'
import type { LoginLimiter, Outcome } from './login-limits.js'
import { checking } from './unavailable.js'

export const API_KEY_PREFIX = 'uk_'
/** Live keys a user may hold at once. */
export const MAX_API_KEYS = 20
/** How long a valid key's row is trusted without reading it again (deletions evict it at once). */
const KEY_CACHE_MS = 5000
const KEY_CACHE_MAX = 10_000
/** last_used_at is written at most this often per key. */
const LAST_USED_MS = 60_000
/** How long a deleted (or expired, or stale) key is remembered as revoked. */
export const DELETED_KEY_MEMORY_MS = 7 * 86_400_000
/** How often ended keys are marked and old ones purged. */
export const API_KEY_SWEEP_MS = 3_600_000
const LOOKUP_LENGTH = 16

export interface ApiKeyView { id: string, name: string, created_at: string, expires_at: string | null, last_used_at: string | null }
export interface NewApiKey { id: string, name: string, key: string, created_at: string, expires_at: string | null }

/** True when a presented secret is meant as an API key (by its prefix). */
export function isApiKey (secret: string | undefined | null): secret is string {
  return typeof secret === 'string' && secret.startsWith(API_KEY_PREFIX)
}

const sha256 = (key: string): string => createHash('sha256').update(key, 'utf8').digest('hex')

interface CachedKey { id: string, userId: number, tokenVersion: number, expiresAt: number | null, until: number }

/** A valid key's principal, with when the key ends (null: never by itself). */
export interface VerifiedKey { principal: Required<UserPrincipal>, expiresAt: Date | null }

export interface ApiKeyServiceDeps {
  db: Database
  events: EventBus
  audit: AuditService
  auth: AuthService
  loginLimits: LoginLimiter
  log: FastifyBaseLogger
}

export function createApiKeyService ({ db, events, audit, auth, loginLimits, log }: ApiKeyServiceDeps) {
  const { ApiKey, User } = db.models

  // Valid keys by hash. The user's flags and token version are not kept
  // here: they come from the auth service's user cache on every use.
  const cache = new Map<string, CachedKey>()
  let generation = 0 // a load that raced with an eviction is not cached
  const evictWhere = (match: (e: CachedKey) => boolean): void => {
    for (const [hash, e] of cache) if (match(e)) cache.delete(hash)
    generation++
  }
  const evictUser = ({ userId }: { userId: number }): void => { evictWhere((e) => e.userId === userId) }
  const offs = [
    events.on('apiKeyRevoked', ({ keyId }) => { evictWhere((e) => e.id === keyId) }),
    events.on('userChanged', evictUser),
    events.on('userRevoked', evictUser),
    events.on('passwordChanged', evictUser)
  ]

  // last_used_at, written in the background at most once a minute per key.
  const lastWritten = new Map<string, number>()
  function touch (keyId: string, now: number): void {
    const last = lastWritten.get(keyId)
    if (last !== undefined && now - last < LAST_USED_MS) return
    if (lastWritten.size >= KEY_CACHE_MAX) lastWritten.clear()
    lastWritten.set(keyId, now)
    db.serialized(async () => await ApiKey.update({ lastUsedAt: new Date(now) }, { where: { id: keyId } }))
      .catch((err: unknown) => { log.debug({ err }, 'could not record when an API key was last used') })
  }

  /** The key's row, from the cache or the database; TOKEN_INVALID for an unknown key, CREDENTIAL_REVOKED for a deleted one. */
  async function row (key: string): Promise<CachedKey> {
    const hash = sha256(key)
    const now = Date.now()
    const hit = cache.get(hash)
    if (hit !== undefined && hit.until > now) return hit
    const lookup = key.slice(API_KEY_PREFIX.length, API_KEY_PREFIX.length + LOOKUP_LENGTH)
    if (lookup.length < LOOKUP_LENGTH) throw new Errors.TOKEN_INVALID()
    const before = generation
    const found = await checking(async () => await ApiKey.findOne({ where: { lookup } }))
    if (found === null || !timingSafeEqual(Buffer.from(found.keyHash, 'hex'), Buffer.from(hash, 'hex'))) throw new Errors.TOKEN_INVALID()
    // deleted, or its user deleted (user_id set to null)
    if (found.deletedAt !== null || found.userId === null) throw new Errors.CREDENTIAL_REVOKED()
    const entry: CachedKey = { id: found.id, userId: found.userId, tokenVersion: found.tokenVersion, expiresAt: found.expiresAt?.getTime() ?? null, until: now + KEY_CACHE_MS }
    if (found.lastUsedAt !== null && !lastWritten.has(found.id)) lastWritten.set(found.id, found.lastUsedAt.getTime())
    if (before === generation) {
      if (cache.size >= KEY_CACHE_MAX) cache.clear()
      cache.set(hash, entry)
    }
    return entry
  }

  /** The principal of a known key, checked against the time and its user as they are now. */
  async function principalOf (entry: CachedKey): Promise<VerifiedKey> {
    const now = Date.now()
    if (entry.expiresAt !== null && entry.expiresAt <= now) throw new Errors.CREDENTIAL_REVOKED()
    let user
    try {
      user = await auth.currentUser(entry.userId)
    } catch (err) {
      if (isError(err, 'USER_NOT_FOUND')) throw new Errors.CREDENTIAL_REVOKED()
      throw err
    }
    if (!user.is_active) throw new Errors.USER_INACTIVE()
    if (user.token_version !== entry.tokenVersion) throw new Errors.CREDENTIAL_REVOKED()
    touch(entry.id, now)
    return {
      principal: { id: user.id, username: user.username, isStaff: user.is_staff, apiKeyId: entry.id },
      expiresAt: entry.expiresAt === null ? null : new Date(entry.expiresAt)
    }
  }

  /**
   * A key as a log-in (MQTT CONNECT): TOKEN_INVALID for an unknown key (a
   * guess), CREDENTIAL_REVOKED for one deleted, expired, or ended by its
   * user's password change or deactivation or deletion, USER_INACTIVE for
   * an inactive user's key; DATABASE_UNAVAILABLE when it could not be checked.
   */
  async function verify (key: string): Promise<VerifiedKey> {
    if (!isApiKey(key)) throw new Errors.TOKEN_INVALID()
    return await principalOf(await row(key))
  }

  /** Only what was guessed counts as a failed log-in. */
  const outcome = (err: unknown): Outcome => isError(err, 'TOKEN_INVALID') ? 'failed' : 'uncounted'

  async function live (userId: number): Promise<ApiKeyView[]> {
    const rows = await db.sequelize.query(`SELECT k.id, k.name, k.created_at, k.expires_at, k.last_used_at FROM api_keys k JOIN users u ON u.id = k.user_id
WHERE k.user_id = $1 AND k.deleted_at IS NULL AND k.token_version = u.token_version AND (k.expires_at IS NULL OR k.expires_at > $2)
ORDER BY k.created_at, k.id`, { type: QueryTypes.SELECT, bind: [userId, dateParam(db.dialect, new Date())] }) as Array<{ id: string, name: string, created_at: unknown, expires_at: unknown, last_used_at: unknown }>
    return rows.map((r) => ({
      id: r.id,
      name: r.name,
      created_at: iso(r.created_at as Date) as string,
      expires_at: iso(r.expires_at as Date | null),
      last_used_at: iso(r.last_used_at as Date | null)
    }))
  }

  async function removeFor (userId: number, keyId: string, ctx: AuditContext): Promise<void> {
    await db.transaction(async (transaction) => {
      const key = await ApiKey.findOne({ where: { id: keyId, userId, deletedAt: null }, transaction, lock: transaction.LOCK.UPDATE })
      if (key === null) throw new Errors.API_KEY_NOT_FOUND()
      key.deletedAt = new Date()
      await key.save({ transaction })
      await audit.record(ctx, { action: 'api_key.deleted', targetUserId: userId, details: { key_id: key.id, name: key.name } }, transaction)
    })
    events.emit('apiKeyRevoked', { userId, keyId })
  }

  /**
   * Marks the keys ended by their user (a password change, a deactivation,
   * a deletion) as deleted, and forgets keys deleted or expired more than
   * DELETED_KEY_MEMORY_MS ago. Returns the rows purged.
   */
  async function sweep (now = Date.now()): Promise<number> {
    const at = dateParam(db.dialect, new Date(now))
    await db.serialized(async () => await db.sequelize.query(`UPDATE api_keys SET deleted_at = $1 WHERE deleted_at IS NULL
AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = api_keys.user_id AND u.token_version = api_keys.token_version)`, { bind: [at] }))
    const cutoff = new Date(now - DELETED_KEY_MEMORY_MS)
    return await db.serialized(async () => await ApiKey.destroy({ where: { [Op.or]: [{ deletedAt: { [Op.lt]: cutoff } }, { expiresAt: { [Op.lt]: cutoff } }] } }))
  }
  let sweeping = false
  const sweepNow = (): void => {
    if (sweeping) return
    sweeping = true
    sweep()
      .then((n) => { if (n > 0) log.info({ purged: n }, 'ended API keys purged') })
      .catch((err: unknown) => { log.warn({ err }, 'API key sweep failed; it runs again later') })
      .finally(() => { sweeping = false })
  }
  const sweeper = setInterval(sweepNow, API_KEY_SWEEP_MS)
  sweeper.unref()
  // The first a minute after the start: not while a restarted node's fleet logs in again.
  const firstSweep = setTimeout(sweepNow, 60_000)
  firstSweep.unref()

  return {
    /**
     * A new key for the principal's user, shown only in this answer.
     * API_KEY_FORBIDDEN when the principal is itself a key; TOO_MANY_API_KEYS
     * past MAX_API_KEYS live keys; BAD_REQUEST for an empty name or an
     * expiry in the past.
     */
    async create (principal: UserPrincipal, input: { name: string, expiresAt?: Date | null }, ctx: AuditContext): Promise<NewApiKey> {
      if (principal.apiKeyId !== undefined) throw new Errors.API_KEY_FORBIDDEN('an API key cannot create API keys; log in with a password')
      const name = input.name.trim()
      if (name === '' || name.length > 100) throw new Errors.BAD_REQUEST('name must be 1 to 100 characters')
      const expiresAt = checkExpiry(input.expiresAt ?? null)
      const key = API_KEY_PREFIX + randomBytes(32).toString('base64url')
      const made = await db.transaction(async (transaction) => {
        // The user's row, locked: concurrent creates of one user count one after the other.
        const user = await User.findByPk(principal.id, { transaction, lock: transaction.LOCK.UPDATE })
        if (user === null) throw new Errors.USER_NOT_FOUND()
        const [{ n }] = await db.sequelize.query(`SELECT COUNT(*) AS n FROM api_keys WHERE user_id = $1 AND deleted_at IS NULL AND token_version = $2
AND (expires_at IS NULL OR expires_at > $3)`, { type: QueryTypes.SELECT, bind: [user.id, user.tokenVersion, dateParam(db.dialect, new Date())], transaction }) as [{ n: unknown }]
        if (Number(n) >= MAX_API_KEYS) throw new Errors.TOO_MANY_API_KEYS(MAX_API_KEYS)
        const row = await ApiKey.create({
          id: randomUUID(),
          userId: user.id,
          name,
          lookup: key.slice(API_KEY_PREFIX.length, API_KEY_PREFIX.length + LOOKUP_LENGTH),
          keyHash: sha256(key),
          tokenVersion: user.tokenVersion,
          expiresAt
        }, { transaction })
        await audit.record(ctx, { action: 'api_key.created', targetUserId: user.id, details: { key_id: row.id, name } }, transaction)
        return row
      })
      return { id: made.id, name: made.name, key, created_at: iso(made.createdAt) as string, expires_at: iso(made.expiresAt) }
    },

    /** The principal's live keys, oldest first, without the keys themselves. */
    async list (principal: UserPrincipal): Promise<ApiKeyView[]> {
      return await live(principal.id)
    },

    /** Deletes one of the principal's keys (API_KEY_NOT_FOUND for another user's or an unknown id). */
    async remove (principal: UserPrincipal, keyId: string, ctx: AuditContext): Promise<void> {
      await removeFor(principal.id, keyId, ctx)
    },

    /** A user's live keys (the admin pages). */
    listOf: live,

    /** Deletes a user's key (staff, the admin pages): as remove. */
    removeFor,

    verify,

    /**
     * The principal of a key presented on a request (REST, the Management
     * API). A valid key found in the cache is not a log-in; any other is
     * checked under the log-in limits of `address`, an unknown key counted
     * as a failed log-in (429 once blocked). A key that ended answers
     * TOKEN_INVALID, as a revoked access JWT does, but is not counted.
     */
    async authenticate (key: string, address: string): Promise<UserPrincipal> {
      try {
        const hit = cache.get(sha256(key))
        const verified = hit !== undefined && hit.until > Date.now()
          ? await principalOf(hit)
          : await loginLimits.attempt(address, { via: 'api', kind: 'user' }, async () => await verify(key), outcome)
        return verified.principal
      } catch (err) {
        if (isError(err, 'CREDENTIAL_REVOKED')) throw new Errors.TOKEN_INVALID()
        throw err
      }
    },

    sweep,

    close (): void {
      clearInterval(sweeper)
      clearTimeout(firstSweep)
      for (const off of offs) off()
    }
  }
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>
