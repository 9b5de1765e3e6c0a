// The domain, assembled: plain factories with explicit dependencies. HTTP
// routes, broker hooks, admin pages, the CLI and tests all call these.
import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { Database } from '../db/index.js'
import { atLeast } from '../contract/roles.js'
import { createEventBus, type EventBus } from '../events.js'
import { createAccessService, EXPIRY_SWEEP_MS } from './access.js'
import { createApiKeyService } from './api-keys.js'
import { createAuditService } from './audit.js'
import { createAuthService, type JwtPort } from './auth.js'
import { createCommandService } from './commands.js'
import { createFrameWriter } from './frame-writer.js'
import { createFrameService } from './frames.js'
import { createGroupService } from './groups.js'
import { createModelService } from './models.js'
import { createLoginLimiter, createMemoryAttemptStore, type AttemptStore } from './login-limits.js'
import { createOverviewService } from './overview.js'
import { createPresenceService, type RemotePresence } from './presence.js'
import { createRobotTokenService } from './robot-tokens.js'
import { createRobotService } from './robots.js'
import { createRollupService } from './rollups.js'
import { createSessionService } from './sessions.js'
import { createMemoryTokenStore, type TokenStore } from './token-store.js'
import { createUserService } from './users.js'

/** The first retention sweep runs this long after the start (at most). */
export const RETENTION_FIRST_MS = 60_000
/** How often the open commands are counted for /metrics and the dashboard. */
export const COMMAND_COUNT_MS = 5000
/** How often finished commands past COMMAND_RETENTION_DAYS are looked for. */
export const COMMAND_RETENTION_INTERVAL_MS = 600_000

export interface ServiceDeps {
  db: Database
  config: Pick<Config, 'ROBOT_TOKEN_TTL' | 'COMMAND_TIMEOUT' | 'JWT_ACCESS_TTL' | 'JWT_REFRESH_TTL' | 'FRAME_BATCH_MAX' | 'FRAME_QUEUE_LIMIT' | 'FRAME_RETENTION_DAYS' | 'FRAME_RETENTION_INTERVAL' | 'FRAME_LINGER_MS' | 'ADMIN_SESSION_TTL' | 'AUTH_FAIL_LIMIT' | 'AUTH_FAIL_ADDRESS_LIMIT' | 'AUTH_FAIL_WINDOW' | 'COMMAND_QUEUE_LIMIT' | 'COMMAND_RETENTION_DAYS' | 'HISTORY_CONCURRENCY' | 'HISTORY_NODE_CONCURRENCY' | 'AGGREGATE_MAX_ROWS' | 'DATABASE_STATEMENT_TIMEOUT'>
  log: FastifyBaseLogger
  jwt: JwtPort
  tokenStore?: TokenStore
  /** where failed log-ins are counted (in memory by default) */
  attemptStore?: AttemptStore
  events?: EventBus
  /** cluster mode: whether a robot is command-connected through another node */
  remotePresence?: RemotePresence
}

export function createServices ({ db, config, log, jwt, tokenStore, attemptStore, events: bus, remotePresence }: ServiceDeps) {
  const events = bus ?? createEventBus((err, event) => log.error({ err, event }, 'event listener failed'))
  const tokens = tokenStore ?? createMemoryTokenStore({ voidedTtlSeconds: config.ROBOT_TOKEN_TTL })
  const audit = createAuditService({ db })
  const users = createUserService({ db, events, audit })
  const models = createModelService({ db, audit })
  const robots = createRobotService({ db, events, audit, tokens, models })
  const access = createAccessService({ db, events, audit })
  const groups = createGroupService({ db, events, audit })
  const presence = createPresenceService({ remote: remotePresence })
  const robotTokens = createRobotTokenService({ robots, store: tokens, ttlSeconds: config.ROBOT_TOKEN_TTL })
  const commands = createCommandService({ db, events, audit, access, presence, models, timeoutSeconds: config.COMMAND_TIMEOUT, queueLimit: config.COMMAND_QUEUE_LIMIT })
  const rollups = createRollupService({ db, log })
  const frames = createFrameService({ db, access, rollups, models, limits: { perUser: config.HISTORY_CONCURRENCY, perNode: config.HISTORY_NODE_CONCURRENCY, maxRows: config.AGGREGATE_MAX_ROWS } })
  const frameWriter = createFrameWriter({
    db,
    log,
    maxBatch: config.FRAME_BATCH_MAX,
    queueLimit: config.FRAME_QUEUE_LIMIT,
    lingerMs: config.FRAME_LINGER_MS,
    afterCommit: (rows) => { void rollups.afterCommit(rows) }
  })
  const auth = createAuthService({ users, audit, events, jwt, accessTtl: config.JWT_ACCESS_TTL, refreshTtl: config.JWT_REFRESH_TTL })
  const sessions = createSessionService({ db, events, audit, users, ttlSeconds: config.ADMIN_SESSION_TTL })
  const overview = createOverviewService({ db, commands })
  const attempts = attemptStore ?? createMemoryAttemptStore()
  const loginLimits = createLoginLimiter({ store: attempts, limit: config.AUTH_FAIL_LIMIT, addressLimit: config.AUTH_FAIL_ADDRESS_LIMIT, windowSeconds: config.AUTH_FAIL_WINDOW, audit, log })
  const apiKeys = createApiKeyService({ db, events, audit, auth, loginLimits, log })

  /** Runs a sweep every `ms`, one at a time; a failure (a database outage) is logged and retried on the next tick. */
  const every = (ms: number, sweep: () => Promise<number>, swept: (n: number) => void, failed: string): NodeJS.Timeout => {
    let running = false
    const timer = setInterval(() => {
      if (running) return
      running = true
      sweep()
        .then((n) => { if (n > 0) swept(n) })
        .catch((err: unknown) => { log.warn({ err }, failed) })
        .finally(() => { running = false })
    }, ms)
    timer.unref()
    return timer
  }

  // docs/protocol.md §5: open commands expire after COMMAND_TIMEOUT.
  const sweeper = every(Math.min(1000, config.COMMAND_TIMEOUT * 250), async () => await commands.expireOverdue(),
    (n) => { log.info({ expired: n }, 'commands expired') }, 'command expiry sweep failed')

  commands.onReleaseError((err, robotUuid) => { log.warn({ err, robot: robotUuid }, 'could not release queued commands; they go out on its next subscription') })

  // A queued command goes out only while its issuer may command the robot:
  // when that right ends, the issuer's queued commands are cancelled now
  // (the release checks again, for what a lost event or a down node missed).
  const cancelQueued = (cancelling: Promise<number>, about: { user?: number, robot?: string }): void => {
    cancelling
      .then((n) => { if (n > 0) log.info({ ...about, cancelled: n }, 'queued commands cancelled: their issuer may no longer command the robot') })
      .catch((err: unknown) => { log.warn({ err, ...about }, 'could not cancel queued commands whose issuer lost the right to command; the release checks again') })
  }
  const ofUser = (userId: number): void => { cancelQueued(commands.cancelUnauthorized(userId), { user: userId }) }
  const offAccess = events.on('accessChanged', (e) => { if (!atLeast(e.role, 'operator')) ofUser(e.userId) })
  const offGroupGrant = events.on('groupGrantChanged', (e) => { if (!atLeast(e.role, 'operator')) ofUser(e.userId) })
  const offGroupRobots = events.on('groupRobotsChanged', (e) => { if (!e.added) for (const uuid of e.robotUuids) cancelQueued(commands.cancelUnauthorizedOn(uuid), { robot: uuid }) })
  const offGroupDeleted = events.on('groupDeleted', () => { cancelQueued(commands.cancelUnauthorizedOn(null), {}) })

  // docs/protocol.md §13.2: expired grants stop working by themselves (every
  // check compares the time); this removes them and audits each once.
  const expiry = every(EXPIRY_SWEEP_MS, async () => await access.expireDue(),
    (n) => { log.info({ expired: n }, 'grants expired') }, 'grant expiry sweep failed; it runs again in a second')
  // (a deactivation also emits userRevoked: cancelled there, not twice)
  const offUser = events.on('userChanged', (e) => { if (!e.isStaff && e.isActive) ofUser(e.userId) })
  const offRevoked = events.on('userRevoked', (e) => { ofUser(e.userId) })

  // /metrics and the dashboard read the open commands from memory; this
  // counts them in the background (through the status index).
  const countCommands = (): void => {
    commands.refreshCounts().catch((err: unknown) => { log.debug({ err }, 'could not count open commands; the last count stands') })
  }
  countCommands()
  const counter = setInterval(countCommands, COMMAND_COUNT_MS)
  counter.unref()

  // Finished commands older than COMMAND_RETENTION_DAYS go, in the
  // background, every COMMAND_RETENTION_INTERVAL_MS, the first time a minute
  // after the start (as frames do).
  const commandRetention = { removed: 0 }
  let retainingCommands: Promise<void> | null = null
  const retainCommands = (): void => {
    if (config.COMMAND_RETENTION_DAYS === 0 || retainingCommands !== null) return
    const cutoff = new Date(Date.now() - config.COMMAND_RETENTION_DAYS * 86400_000)
    retainingCommands = commands.removeFinishedOlderThan(cutoff, { stop: () => closing })
      .then((n) => {
        commandRetention.removed += n
        if (n > 0) log.info({ removed: n, before: cutoff.toISOString() }, 'retention removed old finished commands')
      })
      .catch((err: unknown) => { log.warn({ err }, 'command retention sweep failed; it runs again next time') })
      .finally(() => { retainingCommands = null })
  }
  const commandRetentionTimer = config.COMMAND_RETENTION_DAYS === 0 ? null : setInterval(retainCommands, COMMAND_RETENTION_INTERVAL_MS)
  commandRetentionTimer?.unref()
  const firstCommandRetention = config.COMMAND_RETENTION_DAYS === 0 ? null : setTimeout(retainCommands, RETENTION_FIRST_MS)
  firstCommandRetention?.unref()

  // docs/protocol.md §6.6: frames older than FRAME_RETENTION_DAYS go, in the background,
  // every FRAME_RETENTION_INTERVAL seconds, the first time a minute after the
  // start (or sooner with a shorter interval): not while a restarted node's
  // fleet logs in again.
  const retention = { removed: 0 }
  let retaining: Promise<void> | null = null
  let closing = false
  const retain = (): void => {
    if (config.FRAME_RETENTION_DAYS === 0 || retaining !== null) return
    const cutoff = new Date(Date.now() - config.FRAME_RETENTION_DAYS * 86400_000)
    const started = Date.now()
    retaining = frames.removeOlderThan(cutoff, { stop: () => closing })
      .then((n) => {
        retention.removed += n
        if (n > 0) log.info({ removed: n, before: cutoff.toISOString(), ms: Date.now() - started }, 'retention removed old frames')
      })
      .catch((err: unknown) => { log.warn({ err }, 'retention sweep failed; it runs again next time') })
      .finally(() => { retaining = null })
  }
  const retentionTimer = config.FRAME_RETENTION_DAYS === 0 ? null : setInterval(retain, config.FRAME_RETENTION_INTERVAL * 1000)
  retentionTimer?.unref()
  const firstRetention = config.FRAME_RETENTION_DAYS === 0 ? null : setTimeout(retain, Math.min(RETENTION_FIRST_MS, config.FRAME_RETENTION_INTERVAL * 1000))
  firstRetention?.unref()
  // Per-minute rollups of the frames, for aggregates (docs/protocol.md §6.4).
  rollups.start()

  return {
    events,
    audit,
    users,
    robots,
    models,
    access,
    groups,
    presence,
    robotTokens,
    commands,
    frames,
    rollups,
    frameWriter,
    /** Frames removed by retention since the start. */
    retention,
    /** Finished commands removed by retention since the start. */
    commandRetention,
    auth,
    sessions,
    overview,
    loginLimits,
    apiKeys,
    async close (): Promise<void> {
      clearInterval(sweeper)
      clearInterval(counter)
      if (commandRetentionTimer !== null) clearInterval(commandRetentionTimer)
      if (firstCommandRetention !== null) clearTimeout(firstCommandRetention)
      offAccess()
      offGroupGrant()
      offGroupRobots()
      offGroupDeleted()
      clearInterval(expiry)
      apiKeys.close()
      offUser()
      offRevoked()
      if (retentionTimer !== null) clearInterval(retentionTimer)
      if (firstRetention !== null) clearTimeout(firstRetention)
      closing = true
      await retaining
      await retainingCommands
      await commands.settle()
      await frameWriter.flush().catch((err: unknown) => { log.error({ err }, 'frames could not be written at shutdown') })
      await rollups.close()
      await tokens.close()
      await attempts.close()
    }
  }
}

export type Services = ReturnType<typeof createServices>
export type { UserPrincipal } from './access.js'
export type { AuditContext } from './audit.js'
