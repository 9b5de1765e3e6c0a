// Every setting of United, read once from the environment and passed down.
// docs/configuration.md describes each variable; the defaults live in this schema only.
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { envSchema } from 'env-schema'
import { Type, type Static } from 'typebox'
import type { DatabaseOptions } from './db/index.js'
import { loadTlsFiles } from './tls.js'

export const ConfigSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'development' }),
  HOST: Type.String({ default: '127.0.0.1', description: 'address the HTTP and MQTT listeners bind to' }),
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8000 }),
  MQTT_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 1883 }),
  MQTT_TLS_PORT: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'MQTT over TLS on this port (with TLS_CERT_FILE and TLS_KEY_FILE)' })),
  TLS_CERT_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM certificate (chain) of MQTT over TLS; re-read on SIGHUP' })),
  TLS_KEY_FILE: Type.Optional(Type.String({ minLength: 1, description: 'PEM private key of MQTT over TLS; re-read on SIGHUP' })),
  DATABASE_URL: Type.String({ default: 'sqlite:./data/united.sqlite', pattern: '^(sqlite:|postgres(ql)?://)' }),
  PG_BACKEND_FLUSH_AFTER: Type.String({
    default: '256kB',
    pattern: '^([0-9]+(kB|MB)?|server)$',
    description: "PostgreSQL's backend_flush_after for United's connections (0-2MB; 'server' keeps the server's own)"
  }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'cluster mode: every United process with the same PostgreSQL database, Redis and REDIS_PREFIX is a node of one broker' })),
  REDIS_PREFIX: Type.String({ default: 'united:', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.:-]+$', description: 'prefix of every Redis key and pub/sub channel' }),
  NODE_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9_.-]+$', description: "this node's name in logs, metrics and /admin/api/cluster (generated at each start)" })),
  CLUSTER_NODE_TIMEOUT: Type.Integer({ minimum: 3, maximum: 600, default: 15, description: 'seconds after which a node that stopped beating is dead' }),
  MAX_CONNECTIONS_PER_USER: Type.Integer({ minimum: 0, maximum: 1000000, default: 100, description: "open MQTT connections of one user at once, across the cluster's nodes; one more gets CONNACK 5 (0: no cap)" }),
  MAX_CONNECTIONS_PER_ROBOT: Type.Integer({ minimum: 0, maximum: 1000000, default: 10, description: "open MQTT connections of one robot at once, across the cluster's nodes; one more gets CONNACK 5 (0: no cap)" }),
  MQTT_SESSION_TTL: Type.Integer({ minimum: 10, maximum: 31536000, default: 86400, description: 'seconds a persistent MQTT session (clean = false) is kept after its last connection ended' }),
  MQTT_SESSIONS_PER_IDENTITY: Type.Integer({ minimum: 1, maximum: 1000000, default: 100, description: "persistent MQTT sessions kept per user or robot; a new one drops the identity's least recently used (not a connected one)" }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  JWT_ACCESS_TTL: Type.Integer({ minimum: 1, default: 300 }),
  JWT_REFRESH_TTL: Type.Integer({ minimum: 1, default: 86400 }),
  ROBOT_TOKEN_TTL: Type.Integer({ minimum: 1, default: 3600 }),
  COMMAND_TIMEOUT: Type.Number({ exclusiveMinimum: 0, default: 30 }),
  MAX_FRAME_BYTES: Type.Integer({ minimum: 256, default: 65536 }),
  FRAME_BATCH_MAX: Type.Integer({ minimum: 1, maximum: 5000, default: 1000, description: 'frames per INSERT' }),
  FRAME_LINGER_MS: Type.Integer({ minimum: 0, maximum: 1000, default: 0, description: 'least milliseconds between two frame batches that are not full' }),
  FRAME_QUEUE_LIMIT: Type.Integer({ minimum: 1, default: 20000, description: 'frames waiting for storage before robots are slowed down' }),
  FRAME_RETENTION_DAYS: Type.Integer({ minimum: 0, maximum: 36500, default: 0, description: 'days frames are kept (by received_at); 0 keeps them forever' }),
  FRAME_RETENTION_INTERVAL: Type.Integer({ minimum: 1, maximum: 3600, default: 600, description: 'seconds between two retention sweeps (at most an hour)' }),
  COMMAND_QUEUE_LIMIT: Type.Integer({ minimum: 1, maximum: 100000, default: 100, description: 'queued commands per robot at most; one more answers 429 UNITED_QUEUE_FULL' }),
  COMMAND_RETENTION_DAYS: Type.Integer({ minimum: 0, maximum: 36500, default: 90, description: 'days finished commands are kept (by created_at); 0 keeps them forever' }),
  HISTORY_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 1000, default: 2, description: 'aggregates and exports at once per user; more answer 429 UNITED_BUSY' }),
  HISTORY_NODE_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 10000, default: 8, description: 'aggregates and exports at once on this node; more answer 429 UNITED_BUSY' }),
  AGGREGATE_MAX_ROWS: Type.Integer({ minimum: 1, default: 1000000, description: 'raw frames one aggregate may read; more answer 400 UNITED_RANGE_TOO_LARGE before it runs' }),
  DATABASE_STATEMENT_TIMEOUT: Type.Number({ minimum: 0, maximum: 3600, default: 30, description: 'seconds a query of a request may run before it is cancelled (0: no limit); the frame writer and migrations are not bound by it' }),
  LOG_LEVEL: Type.Union([
    Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'),
    Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')
  ], { default: 'info' }),
  ADMIN_SESSION_TTL: Type.Integer({ minimum: 60, default: 43200, description: 'seconds an admin log-in lasts' }),
  AUTH_FAIL_LIMIT: Type.Integer({ minimum: 0, default: 10, description: 'failed log-ins of one identity (username, serial, MQTT username) from one client address per window before that identity is blocked there (token endpoints and MQTT CONNECT); 0 turns the limit off' }),
  AUTH_FAIL_ADDRESS_LIMIT: Type.Integer({ minimum: 0, default: 100, description: 'failed log-ins from one client address per window, all identities together, before the whole address is blocked; 0 turns this limit off' }),
  AUTH_FAIL_WINDOW: Type.Integer({ minimum: 1, maximum: 86400, default: 60, description: 'seconds of the log-in limit window' }),
  ADMIN_LOGIN_RATE: Type.Integer({ minimum: 1, default: 10, description: 'log-in attempts per minute per client address on /admin/login' }),
  TRUST_PROXY: Type.Boolean({ default: false, description: 'trust X-Forwarded-For/-Proto from a reverse proxy (client address, https)' }),
  MQTT_PROXY_PROTOCOL: Type.Boolean({ default: false, description: 'every connection to the plain MQTT port starts with a PROXY protocol header (v1 or v2) from a TCP load balancer, which names the client address; one without is closed' }),
  PUBLIC_URL: Type.Optional(Type.String({ description: 'URL printed at start and used in links' }))
})

type RawConfig = Static<typeof ConfigSchema>
export type Config = RawConfig & {
  JWT_SECRET: string
  /** this node's name: NODE_ID, or generated at each start (a restarted node is a new node to the others) */
  nodeId: string
  /** true when JWT_SECRET was generated for this process (tokens die with it) */
  jwtSecretGenerated: boolean
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Validates `env` against the schema. Throws a ConfigError whose message names
 * every bad variable. In production a missing or weak JWT_SECRET is fatal;
 * elsewhere a random one is generated (and the caller says so).
 */
export function loadConfig (env: Record<string, string | undefined>): Config {
  let raw: RawConfig
  try {
    raw = envSchema<RawConfig>({ schema: ConfigSchema, data: env, dotenv: false })
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${(err as Error).message.replace(/^env\//, '')}`)
  }
  if (raw.PG_BACKEND_FLUSH_AFTER !== 'server' && flushAfterKb(raw.PG_BACKEND_FLUSH_AFTER) > 2048) {
    throw new ConfigError(`invalid configuration: PG_BACKEND_FLUSH_AFTER must be 0-2MB (PostgreSQL's own bounds), or 'server'; got ${raw.PG_BACKEND_FLUSH_AFTER}`)
  }
  const tls = [raw.MQTT_TLS_PORT, raw.TLS_CERT_FILE, raw.TLS_KEY_FILE]
  if (tls.some((v) => v !== undefined) && tls.some((v) => v === undefined)) {
    const missing = (['MQTT_TLS_PORT', 'TLS_CERT_FILE', 'TLS_KEY_FILE'] as const).filter((name) => raw[name] === undefined)
    throw new ConfigError(`invalid configuration: MQTT over TLS needs MQTT_TLS_PORT, TLS_CERT_FILE and TLS_KEY_FILE together; missing ${missing.join(', ')}`)
  }
  if (raw.TLS_CERT_FILE !== undefined && raw.TLS_KEY_FILE !== undefined) {
    try {
      loadTlsFiles({ certFile: raw.TLS_CERT_FILE, keyFile: raw.TLS_KEY_FILE })
    } catch (err) {
      throw new ConfigError(`invalid configuration: ${(err as Error).message}`)
    }
  }
  if (raw.REDIS_URL !== undefined && !/^postgres(ql)?:\/\//.test(raw.DATABASE_URL)) {
    // docs/operations.md §4: the nodes share one PostgreSQL database; a SQLite file is one process's.
    throw new ConfigError('REDIS_URL (cluster mode) needs a PostgreSQL DATABASE_URL that every node shares: SQLite is one process\'s file')
  }
  if (raw.REDIS_URL !== undefined && raw.JWT_SECRET === undefined) {
    // A generated secret is this process's own: a JWT from one node would be refused by the others.
    throw new ConfigError('REDIS_URL (cluster mode) needs JWT_SECRET, the same on every node (at least 32 characters; openssl rand -hex 32)')
  }
  const nodeId = raw.NODE_ID ?? `${hostname().replace(/[^A-Za-z0-9_.-]/g, '').slice(0, 40) || 'node'}-${randomBytes(4).toString('hex')}`
  if (raw.JWT_SECRET !== undefined) return { ...raw, JWT_SECRET: raw.JWT_SECRET, jwtSecretGenerated: false, nodeId }
  if (raw.NODE_ENV === 'production') {
    throw new ConfigError('JWT_SECRET must be set (at least 32 characters) when NODE_ENV=production; generate one with: openssl rand -hex 32')
  }
  return { ...raw, JWT_SECRET: randomBytes(32).toString('hex'), jwtSecretGenerated: true, nodeId }
}

/** What createDatabase takes from the configuration. */
export function dbOptions (config: Config): DatabaseOptions {
  return config.PG_BACKEND_FLUSH_AFTER === 'server' ? {} : { pgBackendFlushAfter: config.PG_BACKEND_FLUSH_AFTER }
}

/** `256kB`, `2MB`, or a bare number of 8 kB pages, as PostgreSQL reads backend_flush_after. */
function flushAfterKb (value: string): number {
  const n = Number.parseInt(value, 10)
  if (value.endsWith('MB')) return n * 1024
  if (value.endsWith('kB')) return n
  return n * 8
}
