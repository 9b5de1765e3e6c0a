// The process entry: read the environment, build the app,
// listen, print where it lives, and close gracefully on SIGTERM/SIGINT.
// A port already in use stops it with a message that names the setting.
import { createRequire } from 'node:module'
import { relative, resolve } from 'node:path'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { loggerOptions } from './logger.js'
import { describeDatabase, listenFailure, maskDatabaseUrl, startBanner } from './start-messages.js'

/** Where package.json is, and `npm run manage` runs: two levels up from dist/src/server.js. */
const PACKAGE_ROOT = resolve(import.meta.dirname, '..', '..')

function prettyAvailable (): boolean {
  try {
    createRequire(import.meta.url).resolve('pino-pretty')
    return true
  } catch {
    return false
  }
}

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig(process.env)
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`united: ${err.message}\n`)
      process.exit(78) // EX_CONFIG
    }
    throw err
  }

  // How this process was started, for the examples of a failed start.
  const command = process.env.npm_lifecycle_event === 'start'
    ? 'npm start'
    : process.env.npm_lifecycle_event === 'dev' ? 'npm run dev' : `node ${relative(process.cwd(), process.argv[1] ?? 'dist/src/server.js') || 'dist/src/server.js'}`
  /** A listener that cannot bind its port ends the start with one paragraph and no stack trace. */
  const failedToListen = (err: unknown, phase: 'broker' | 'http'): boolean => {
    const message = listenFailure(err, config, phase, command)
    if (message === null) return false
    process.stderr.write(`${message}\n`)
    return true
  }

  let app: Awaited<ReturnType<typeof buildApp>>
  try {
    // The broker binds MQTT (TCP, then TLS) while the app is built.
    app = await buildApp(config, loggerOptions(config.LOG_LEVEL, process.stdout.isTTY && prettyAvailable(), config.REDIS_URL === undefined ? undefined : config.nodeId))
  } catch (err) {
    if (failedToListen(err, 'broker')) process.exit(1)
    throw err
  }
  if (config.jwtSecretGenerated) {
    app.log.warn('JWT_SECRET is not set: using a random one for this process (user tokens will not survive a restart). Set JWT_SECRET in production.')
  }

  // With MQTT over TLS, SIGHUP reloads the certificate (broker/tls.ts) instead of stopping the server.
  closeWithGrace({ delay: 10_000, skip: config.MQTT_TLS_PORT === undefined ? [] : ['SIGHUP'] }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'shutting down')
    await app.close()
  })

  // A fleet reconnects at once after a restart or a network cut: a deep
  // accept queue (Node's default is 511) instead of resets for the
  // connections that find it full (the kernel caps it at net.core.somaxconn).
  try {
    await app.listen({ host: config.HOST, port: config.HTTP_PORT, backlog: 4096 })
  } catch (err) {
    if (!failedToListen(err, 'http')) throw err
    // MQTT is already listening: close it (and the database) as at a stop.
    await app.close().catch(() => {})
    process.exit(1)
  }
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.HTTP_PORT
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST
  const hostName = host.includes(':') ? `[${host}]` : host
  const base = (config.PUBLIC_URL ?? `http://${hostName}:${port}`).replace(/\/+$/, '')
  process.stdout.write(startBanner({
    base,
    mqttHost: hostName,
    mqttPort: app.broker.port,
    tlsPort: app.broker.tlsPort,
    database: describeDatabase(config.DATABASE_URL, process.cwd(), PACKAGE_ROOT),
    hasStaff: await hasStaff(app),
    cluster: config.REDIS_URL === undefined ? undefined : `node ${config.nodeId}, Redis ${maskDatabaseUrl(config.REDIS_URL) ?? config.REDIS_URL} (prefix ${config.REDIS_PREFIX})`,
    jwtSecretGenerated: config.jwtSecretGenerated
  }))
}

/** Whether an active staff user exists, so that the banner offers createsuperuser only when none does. */
async function hasStaff (app: Awaited<ReturnType<typeof buildApp>>): Promise<boolean | null> {
  try {
    return await app.services.users.hasActiveStaff()
  } catch {
    return null
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`united: failed to start: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
