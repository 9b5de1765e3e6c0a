// Every setting of United, read once from the environment and passed down.
// CONTRACT §1-5 names the variables; the defaults live in this schema only.
import { randomBytes } from 'node:crypto'
import { envSchema } from 'env-schema'
import { Type, type Static } from 'typebox'

export const ConfigSchema = Type.Object({
  NODE_ENV: Type.String({ default: 'development' }),
  HOST: Type.String({ default: '127.0.0.1', description: 'address the HTTP and MQTT listeners bind to' }),
  HTTP_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8000 }),
  MQTT_PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 1883 }),
  DATABASE_URL: Type.String({ default: 'sqlite:./data/united.sqlite', pattern: '^(sqlite:|postgres(ql)?://)' }),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://', description: 'reserved for cluster mode (not built yet): refused at start' })),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  JWT_ACCESS_TTL: Type.Integer({ minimum: 1, default: 300 }),
  JWT_REFRESH_TTL: Type.Integer({ minimum: 1, default: 86400 }),
  ROBOT_TOKEN_TTL: Type.Integer({ minimum: 1, default: 3600 }),
  COMMAND_TIMEOUT: Type.Number({ exclusiveMinimum: 0, default: 30 }),
  MAX_FRAME_BYTES: Type.Integer({ minimum: 256, default: 65536 }),
  FRAME_BATCH_MAX: Type.Integer({ minimum: 1, maximum: 5000, default: 1000, description: 'frames per INSERT' }),
  FRAME_LINGER_MS: Type.Integer({ minimum: 0, maximum: 1000, default: 0, description: 'least milliseconds between two frame batches that are not full' }),
  FRAME_QUEUE_LIMIT: Type.Integer({ minimum: 1, default: 20000, description: 'frames waiting for storage before robots are slowed down' }),
  LOG_LEVEL: Type.Union([
    Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'),
    Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')
  ], { default: 'info' }),
  ADMIN_SESSION_TTL: Type.Integer({ minimum: 60, default: 43200, description: 'seconds an admin log-in lasts' }),
  ADMIN_LOGIN_RATE: Type.Integer({ minimum: 1, default: 10, description: 'log-in attempts per minute per client address on /admin/login' }),
  TRUST_PROXY: Type.Boolean({ default: false, description: 'trust X-Forwarded-For/-Proto from a reverse proxy (client address, https)' }),
  PUBLIC_URL: Type.Optional(Type.String({ description: 'URL printed at start and used in links' }))
})

type RawConfig = Static<typeof ConfigSchema>
export type Config = RawConfig & {
  JWT_SECRET: string
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
  if (raw.REDIS_URL !== undefined) {
    // Refuse rather than run as a lone node that an operator believes is part of a cluster.
    throw new ConfigError('REDIS_URL is set, but cluster mode is not built yet: run one node without REDIS_URL')
  }
  if (raw.JWT_SECRET !== undefined) return { ...raw, JWT_SECRET: raw.JWT_SECRET, jwtSecretGenerated: false }
  if (raw.NODE_ENV === 'production') {
    throw new ConfigError('JWT_SECRET must be set (at least 32 characters) when NODE_ENV=production; generate one with: openssl rand -hex 32')
  }
  return { ...raw, JWT_SECRET: randomBytes(32).toString('hex'), jwtSecretGenerated: true }
}
