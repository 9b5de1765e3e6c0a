// The process entry (STYLE §2.1): read the environment, build the app,
// listen, print where it lives, and close gracefully on SIGTERM/SIGINT.
import { createRequire } from 'node:module'
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { loggerOptions } from './logger.js'

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

  const app = await buildApp(config, loggerOptions(config.LOG_LEVEL, process.stdout.isTTY && prettyAvailable(), config.REDIS_URL === undefined ? undefined : config.nodeId))
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
  await app.listen({ host: config.HOST, port: config.HTTP_PORT, backlog: 4096 })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.HTTP_PORT
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST
  const base = config.PUBLIC_URL ?? `http://${host.includes(':') ? `[${host}]` : host}:${port}`
  const lines = [
    '',
    'United is running',
    `  REST API      ${base}/`,
    `  API docs      ${base}/docs`,
    `  Admin         ${base}/admin`,
    `  MQTT (TCP)    mqtt://${host.includes(':') ? `[${host}]` : host}:${app.broker.port}`,
    `  MQTT (WS)     ${base.replace(/^http/, 'ws')}/mqtt`,
    ...(app.broker.tlsPort === undefined ? [] : [`  MQTT (TLS)    mqtts://${host.includes(':') ? `[${host}]` : host}:${app.broker.tlsPort}`]),
    `  Health        ${base}/health`,
    `  Database      ${config.DATABASE_URL.startsWith('sqlite:') ? config.DATABASE_URL : config.DATABASE_URL.replace(/\/\/[^@/]*@/, '//***@')}`,
    ...(config.REDIS_URL === undefined ? [] : [`  Cluster       node ${config.nodeId}, Redis ${config.REDIS_URL.replace(/\/\/[^@/]*@/, '//***@')} (prefix ${config.REDIS_PREFIX})`]),
    '',
    'Create the first admin with:',
    '  npm run manage -- createsuperuser --username admin',
    ''
  ]
  if (config.jwtSecretGenerated) lines.push('Note: JWT_SECRET is not set, so user tokens die with this process. Set it in production.', '')
  process.stdout.write(lines.join('\n') + '\n')
}

main().catch((err: unknown) => {
  process.stderr.write(`united: failed to start: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
