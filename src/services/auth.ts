// User sessions (docs/protocol.md §2): username + password → access and refresh JWTs;
// refresh → a new access JWT; an access JWT → the current user. The signer
// is injected (the HTTP layer's @fastify/jwt), so the broker and the admin
// verify exactly as the REST API does.
import { Errors, isError } from '../errors.js'
import type { EventBus } from '../events.js'
import type { UserPrincipal } from './access.js'
import type { AuditContext, AuditService } from './audit.js'
import { checking } from './unavailable.js'
import type { UserService } from './users.js'

export interface JwtPort {
  sign: (payload: TokenClaims, options: { expiresIn: number }) => string
  verify: (token: string) => unknown
}

/**
 * `ver` is the user's token version when the token was signed: a password
 * change or a deactivation moves it on, and every older token is refused.
 */
export interface TokenClaims { sub: string, username: string, type: 'access' | 'refresh', ver: number }
export interface TokenPair { access: string, refresh: string }

export interface AuthServiceDeps {
  users: UserService
  audit: AuditService
  events: EventBus
  jwt: JwtPort
  accessTtl: number
  refreshTtl: number
}

type CurrentUser = Awaited<ReturnType<UserService['credentialState']>>

/**
 * Marks a TOKEN_INVALID thrown for a token whose signature held: expired, or
 * of the wrong kind (a refresh token given as an access token). Such a token
 * was signed here, so presenting it is never a guess: the broker reads
 * `signed` to count it toward no log-in limit.
 */
function signedHere (err: Error): Error & { signed: true } {
  return Object.assign(err, { signed: true as const })
}

/**
 * How long a user's flags are trusted without reading them again. Changes
 * made through this server (API, admin pages) evict the entry at once; the
 * bound only matters for changes written to the database by anything else.
 */
const USER_CACHE_MS = 5000
const USER_CACHE_MAX = 10_000

export function createAuthService ({ users, audit, events, jwt, accessTtl, refreshTtl }: AuthServiceDeps) {
  // Every authenticated request needs the user's current flags: a small
  // read-through cache saves that query on the command and read paths.
  const cache = new Map<number, { user: CurrentUser, until: number }>()
  let generation = 0 // a load that raced with an eviction is not cached
  const evict = ({ userId }: { userId: number }): void => { cache.delete(userId); generation++ }
  events.on('userChanged', evict)
  events.on('userRevoked', evict)
  events.on('passwordChanged', evict)

  async function load (id: number): Promise<CurrentUser> {
    const hit = cache.get(id)
    const now = Date.now()
    if (hit !== undefined && hit.until > now) return hit.user
    const before = generation
    const user = await users.credentialState(id)
    if (before !== generation) return user
    if (cache.size >= USER_CACHE_MAX) cache.clear()
    cache.set(id, { user, until: now + USER_CACHE_MS })
    return user
  }

  function claims (token: string, type: TokenClaims['type']): TokenClaims {
    let decoded: unknown
    try {
      decoded = jwt.verify(token)
    } catch (err) {
      // The signature is checked before the expiry: an expired token was signed here.
      if ((err as { code?: unknown } | null)?.code === 'FAST_JWT_EXPIRED') throw signedHere(new Errors.TOKEN_INVALID())
      throw new Errors.TOKEN_INVALID()
    }
    const c = decoded as (Partial<TokenClaims> & { exp?: unknown }) | null
    // A token without `exp` would never expire: refused (docs/protocol.md §2.1), as
    // is one without the version it was signed at.
    if (c === null || typeof c !== 'object' || c.type !== type || typeof c.sub !== 'string' || typeof c.username !== 'string' ||
      typeof c.exp !== 'number' || !Number.isSafeInteger(c.ver)) {
      throw signedHere(new Errors.TOKEN_INVALID())
    }
    return c as TokenClaims
  }

  function sign (user: { id: number, username: string, token_version: number }, type: TokenClaims['type']): string {
    return jwt.sign({ sub: String(user.id), username: user.username, type, ver: user.token_version }, { expiresIn: type === 'access' ? accessTtl : refreshTtl })
  }

  /**
   * The user behind a token's claims, as they are now (flags may have
   * changed since it was signed); null when they are gone. A database that
   * cannot say throws DATABASE_UNAVAILABLE: a token that could not be checked
   * is not a bad token (it must not answer 401, nor count as a failed log-in).
   */
  async function current (c: TokenClaims): Promise<CurrentUser | null> {
    const id = Number(c.sub)
    if (!Number.isSafeInteger(id)) return null
    let user: CurrentUser
    try {
      user = await load(id)
    } catch (err) {
      if (isError(err, 'USER_NOT_FOUND')) return null
      throw err
    }
    // The claim carries the spelling stored when the token was signed.
    return user.username === c.username ? user : null
  }

  /**
   * The principal of an access JWT. TOKEN_INVALID for a bad token (marked
   * when it was signed here: expired, or a refresh token); CREDENTIAL_REVOKED
   * for one signed here whose user was since deleted, or whose tokens were
   * revoked (a password change or a deactivation moved the version on,
   * also after a reactivation); USER_INACTIVE for an inactive user's own
   * token (CONNACK 5 on MQTT).
   */
  async function access (accessToken: string): Promise<UserPrincipal> {
    const c = claims(accessToken, 'access')
    const user = await current(c)
    if (user === null) throw new Errors.CREDENTIAL_REVOKED()
    if (!user.is_active) throw new Errors.USER_INACTIVE()
    if (user.token_version !== c.ver) throw new Errors.CREDENTIAL_REVOKED()
    return { id: user.id, username: user.username, isStaff: user.is_staff }
  }

  return {
    /**
     * Wrong credentials get INVALID_CREDENTIALS, whether the user is active
     * or not; the right password of an inactive user, CREDENTIAL_REVOKED (a
     * revoked credential, not a guess: counted toward no log-in limit, and
     * only its holder learns that the user exists). A database that cannot
     * check them, DATABASE_UNAVAILABLE. The username matches without regard
     * to case; the tokens carry the stored spelling.
     */
    async login (username: string, password: string, ctx: Omit<AuditContext, 'actor'>): Promise<TokenPair> {
      // The version comes from the row the password was checked against: a
      // password change that races this log-in leaves its tokens stale.
      const user = await users.verifyPassword(username, password)
      if (user === null) throw new Errors.INVALID_CREDENTIALS()
      if (!user.is_active) throw new Errors.CREDENTIAL_REVOKED()
      // No tokens without their audit entry: a database that fails here fails the log-in, as unavailable.
      await checking(async () => { await audit.record({ ...ctx, actor: { id: user.id, username: user.username } }, { action: 'user.login', targetUserId: user.id }) })
      return { access: sign(user, 'access'), refresh: sign(user, 'refresh') }
    },

    async refresh (refreshToken: string): Promise<{ access: string }> {
      const c = claims(refreshToken, 'refresh')
      const user = await current(c)
      if (user === null || !user.is_active || user.token_version !== c.ver) throw new Errors.TOKEN_INVALID()
      return { access: sign(user, 'access') }
    },

    /**
     * The principal of an access JWT, for a request (REST, admin). Throws
     * TOKEN_INVALID for a bad, expired or refresh token, or a revoked one (a
     * deleted user, a password change or deactivation since it was signed),
     * USER_INACTIVE for an inactive user.
     */
    async verifyAccess (accessToken: string): Promise<UserPrincipal> {
      try {
        return await access(accessToken)
      } catch (err) {
        if (isError(err, 'CREDENTIAL_REVOKED')) throw new Errors.TOKEN_INVALID()
        throw err
      }
    },

    /**
     * The principal of an access JWT, for a log-in (MQTT CONNECT), where a
     * revoked credential is not a guess: as verifyAccess, but a token this
     * server signed for a user since deleted, or before a password change or
     * a deactivation, throws CREDENTIAL_REVOKED, and the TOKEN_INVALID of an
     * expired or refresh token is marked `signed: true`.
     */
    authenticateAccess: access,

    /** A user's current flags and token version, through the cache above (API keys: src/services/api-keys.ts). */
    currentUser: load,

    /** An access token for a user, without a password (admin pages, tests). */
    async issueAccess (user: { id: number }): Promise<string> {
      return sign(await users.credentialState(user.id), 'access')
    }
  }
}

export type AuthService = ReturnType<typeof createAuthService>
