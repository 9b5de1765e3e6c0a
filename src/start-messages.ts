// What a starting server tells whoever started it: the banner (where it
// lives, which database it uses, how to create the first admin) and, when a
// listener cannot bind its port, one paragraph naming the setting to change.
// Pure functions of their arguments, so that tests can read every case.
import { isAbsolute, resolve } from 'node:path'
import type { Config } from './config.js'
import { sqliteStorage } from './db/index.js'

/** The default DATABASE_URL's file, relative to where `npm run manage` runs (the package root). */
const DEFAULT_SQLITE = 'data/united.sqlite'

const SECRET_PARAM = /pass|secret|key/i

/**
 * `postgres://user:***@host:5432/db`: the password, and any password-like
 * query parameter, replaced by `mask`; null when the URL holds no secret.
 */
export function maskDatabaseUrl (url: string, mask = '***'): string | null {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    // Not a URL the WHATWG parser reads: hide everything before the host.
    return /\/\/[^@/]*@/.test(url) ? url.replace(/\/\/[^@/]*@/, `//${mask}@`) : null
  }
  const params = [...u.searchParams.keys()].filter((key) => SECRET_PARAM.test(key))
  if (u.password === '' && params.length === 0) return null
  if (u.password !== '') u.password = 'MASKED'
  for (const key of params) u.searchParams.set(key, 'MASKED')
  return u.toString().replaceAll('MASKED', mask)
}

/** Single quotes for the shell when the value holds anything a shell would read. */
function shellWord (value: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`
}

export interface DatabaseInfo {
  /** what the banner shows: `SQLite file /abs/path`, `PostgreSQL postgres://user:***@host/db` */
  label: string
  /** the `DATABASE_URL=… ` prefix `npm run manage` needs to reach this database ('' when it reaches it by default); null when it cannot reach it at all */
  managePrefix: string | null
  /** true when managePrefix stands for a URL whose secret is not shown */
  secretHidden: boolean
}

/** How to name `databaseUrl` (as the server at `cwd` opens it) and how `npm run manage` (run at `packageRoot`) reaches it. */
export function describeDatabase (databaseUrl: string, cwd: string, packageRoot: string): DatabaseInfo {
  if (databaseUrl.startsWith('sqlite:')) {
    const storage = sqliteStorage(databaseUrl)
    if (storage === ':memory:') return { label: 'SQLite in memory (gone when this process ends)', managePrefix: null, secretHidden: false }
    const file = isAbsolute(storage) ? storage : resolve(cwd, storage)
    const prefix = file === resolve(packageRoot, DEFAULT_SQLITE) ? '' : `DATABASE_URL=${shellWord(`sqlite:${file}`)} `
    return { label: `SQLite file ${file}`, managePrefix: prefix, secretHidden: false }
  }
  // The URL as it is when it holds no secret; else with a placeholder to fill in.
  const masked = maskDatabaseUrl(databaseUrl)
  const shown = maskDatabaseUrl(databaseUrl, '<password>') ?? databaseUrl
  return { label: `PostgreSQL ${masked ?? databaseUrl}`, managePrefix: `DATABASE_URL=${shellWord(shown)} `, secretHidden: masked !== null }
}

export interface BannerInput {
  /** http(s)://host:port, no trailing slash */
  base: string
  mqttHost: string
  mqttPort: number
  tlsPort?: number | undefined
  database: DatabaseInfo
  /** whether an active staff user exists (null: could not tell) */
  hasStaff: boolean | null
  cluster?: string | undefined
  jwtSecretGenerated: boolean
}

/** The lines printed once the server listens; the first URL is the admin's, which answers at once. */
export function startBanner (b: BannerInput): string {
  const lines = [
    '',
    'United is running',
    `  Admin         ${b.base}/admin`,
    `  API docs      ${b.base}/docs`,
    `  REST API      ${b.base}`,
    `  MQTT (TCP)    mqtt://${b.mqttHost}:${b.mqttPort}`,
    `  MQTT (WS)     ${b.base.replace(/^http/, 'ws')}/mqtt`,
    ...(b.tlsPort === undefined ? [] : [`  MQTT (TLS)    mqtts://${b.mqttHost}:${b.tlsPort}`]),
    `  Health        ${b.base}/health`,
    `  Database      ${b.database.label}`,
    ...(b.cluster === undefined ? [] : [`  Cluster       ${b.cluster}`]),
    ''
  ]
  if (b.hasStaff !== true) {
    const prefix = b.database.managePrefix
    if (prefix === null) {
      lines.push('No admin yet. `npm run manage` cannot reach an in-memory database: use a file or PostgreSQL (DATABASE_URL) to create one.', '')
    } else {
      lines.push('No admin yet. Create the first one with:', `  ${prefix}npm run manage -- createsuperuser --username admin`)
      if (b.database.secretHidden) lines.push("  (with this server's DATABASE_URL: its password is not shown here)")
      lines.push(`then log in at ${b.base}/admin`, '')
    }
  }
  if (b.jwtSecretGenerated) lines.push('Note: JWT_SECRET is not set, so user tokens die with this process. Set it in production.', '')
  return lines.join('\n') + '\n'
}

/** The listeners of a server and the setting that moves each. */
interface Listener { what: string, variable: 'HTTP_PORT' | 'MQTT_PORT' | 'MQTT_TLS_PORT', port: number, defaultPort?: number, usual: string }

function listeners (config: Config): Listener[] {
  return [
    { what: 'HTTP (REST API, admin pages, MQTT over WebSocket)', variable: 'HTTP_PORT', port: config.HTTP_PORT, defaultPort: 8000, usual: 'perhaps another United or a development server' },
    { what: 'MQTT over TCP', variable: 'MQTT_PORT', port: config.MQTT_PORT, defaultPort: 1883, usual: 'on a developer machine often Mosquitto' },
    ...(config.MQTT_TLS_PORT === undefined ? [] : [{ what: 'MQTT over TLS', variable: 'MQTT_TLS_PORT' as const, port: config.MQTT_TLS_PORT, usual: 'perhaps another MQTT broker' }])
  ]
}

/**
 * One paragraph for a listener that could not bind (EADDRINUSE, EACCES,
 * EADDRNOTAVAIL): which listener, why, the setting to change and an example
 * command. `phase` tells the listeners apart when two settings name the same
 * port: the broker binds MQTT (TCP, then TLS) while the app is built, HTTP
 * binds afterwards. null for any other error.
 */
export function listenFailure (err: unknown, config: Config, phase: 'broker' | 'http', command: string): string | null {
  const e = bindError(err)
  if (e === null) return null
  const all = listeners(config)
  const http = all[0] as Listener
  const mqtt = all[1] as Listener
  const tls = all[2]
  let failed: Listener
  if (phase === 'http') failed = http
  else if (tls !== undefined && e.port === tls.port) failed = tls // also when it is MQTT_PORT too: the twin case below
  else failed = mqtt
  const host = config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST
  const where = `${host}:${e.port ?? failed.port}`
  // Keep the other ports the user chose, so that the example can be run as it is.
  const others = all.filter((l) => l !== failed && l.port !== l.defaultPort && l.port !== 0).map((l) => `${l.variable}=${l.port} `).join('')
  const example = (variable: string, value: string | number): string => `${others}${variable}=${value} ${command}`
  const head = `united: cannot start: ${failed.what} cannot listen on ${where}`
  if (e.code === 'EADDRINUSE') {
    const twin = all.find((l) => l !== failed && l.port === failed.port && l.port !== 0)
    if (twin !== undefined) {
      return `${head}: ${failed.variable} and ${twin.variable} are both ${failed.port}, and each listener needs its own port. Change one of them, for example: ${example(failed.variable, freePort(failed.port, all))}`
    }
    return `${head}: another program already uses this port (${failed.usual}). Stop that program, or give United another port with ${failed.variable}, for example: ${example(failed.variable, freePort(failed.port, all))}`
  }
  if (e.code === 'EACCES') {
    const port = failed.defaultPort ?? 8883
    return `${head}: this user may not listen on port ${failed.port} (ports below 1024 need privileges). Choose a port from 1024 up with ${failed.variable}, for example: ${example(failed.variable, port < 1024 ? port + 8000 : port)}`
  }
  return `${head}: this machine has no address ${config.HOST}. Set HOST to one of its addresses (0.0.0.0 for all of them), for example: ${others}HOST=127.0.0.1 ${command}`
}

/** The listen error in `err` or its causes (Fastify and avvio may wrap it). */
function bindError (err: unknown): { code: string, port?: number } | null {
  let e: unknown = err
  for (let depth = 0; e instanceof Error && depth < 5; depth++) {
    const { code, syscall, port } = e as NodeJS.ErrnoException & { port?: number }
    if ((syscall === 'listen' || syscall === 'bind') && (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL')) {
      return { code, ...(typeof port === 'number' ? { port } : {}) }
    }
    e = e.cause
  }
  return null
}

/** The next port after `port` that none of the listeners uses. */
function freePort (port: number, all: Listener[]): number {
  const taken = new Set(all.map((l) => l.port))
  let next = port
  do {
    next = next >= 65535 ? 1024 : next + 1
  } while (taken.has(next))
  return next
}
