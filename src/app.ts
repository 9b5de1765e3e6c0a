// The composition root: registers, in order, http infrastructure,
// db, services, http routes, broker, admin. The only file under src/ that
// imports broker/ or admin/.
import { readFileSync } from 'node:fs'
import formbody from '@fastify/formbody'
import { Ajv, type Options as AjvOptions } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fp from 'fastify-plugin'
import admin from '../admin/index.js'
import broker from '../broker/index.js'
import { createCluster, type Cluster } from './cluster/index.js'
import { dbOptions, type Config } from './config.js'
import http from './http/index.js'
import authGuard from './http/plugins/auth-guard.js'
import errorHandler from './http/plugins/error-handler.js'
import jwt from './http/plugins/jwt.js'
import swagger from './http/plugins/swagger.js'
import db from './plugins/db.js'
import metrics from './plugins/metrics.js'
import services from './plugins/services.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
    /** cluster mode (REDIS_URL): the Redis side of this node; null for a lone process */
    cluster: Cluster | null
  }
}

// ajv-formats is CommonJS: the function is both module.exports and its `.default`.
const addFormats = addFormatsModule.default

/**
 * Two validators: query strings, params and headers are text, so they are
 * coerced ("limit=10" → 10); JSON bodies are not, so `{"is_staff": "yes"}`
 * or `{"username": 42}` is a 400 that names the field instead of a guess.
 * Unknown body fields are rejected, not silently dropped: a typo such as
 * "isStaff" for "is_staff" must not look like success.
 */
function validatorCompiler () {
  const options: AjvOptions = { removeAdditional: false, useDefaults: true, allErrors: false, strict: false }
  const body = new Ajv({ ...options, coerceTypes: false })
  const text = new Ajv({ ...options, coerceTypes: 'array' })
  addFormats(body)
  addFormats(text)
  return ({ schema, httpPart }: { schema: object, httpPart?: string }) => (httpPart === 'body' ? body : text).compile(schema)
}

/** The package version; package.json is one level up from src/, two from dist/src/. */
export const VERSION: string = (() => {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string, version?: string }
      if (pkg.name === 'united' && pkg.version !== undefined) return pkg.version
    } catch {}
  }
  return '0.0.0'
})()

export const app = fp(async (fastify: FastifyInstance, opts: { config: Config }) => {
  const { config } = opts
  fastify.decorate('config', config)
  fastify.setValidatorCompiler(validatorCompiler())
  await fastify.register(errorHandler)
  // JSON and forms only: a text/plain body is a 415, not a confusing 400.
  fastify.removeContentTypeParser('text/plain')
  await fastify.register(formbody, { bodyLimit: 64 * 1024 })
  await fastify.register(jwt, { secret: config.JWT_SECRET })
  await fastify.register(swagger, { version: VERSION })
  // The statement timeout binds requests' queries, not the frame writer's nor the migrations' (src/db/README.md).
  await fastify.register(db, { url: config.DATABASE_URL, ...dbOptions(config), statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT * 1000 })
  const cluster = config.REDIS_URL === undefined ? null : await createCluster({ config, log: fastify.log })
  fastify.decorate('cluster', cluster)
  // onClose hooks run last-registered first: this one after the services' and the broker's.
  if (cluster !== null) fastify.addHook('onClose', async () => { await cluster.close() })
  await fastify.register(services, { config, ...(cluster === null ? {} : { cluster }) })
  await fastify.register(metrics)
  await fastify.register(authGuard)
  await fastify.register(http)
  await fastify.register(broker)
  await fastify.register(admin, { prefix: '/admin' })
}, { name: 'united' })

/** Fastify options shared by the server and the tests. */
export function fastifyOptions (logger: FastifyServerOptions['logger'], trustProxy = false): FastifyServerOptions {
  return {
    logger,
    // Behind a reverse proxy, request.ip and request.protocol come from
    // X-Forwarded-For/-Proto (audit log addresses, log-in limits, Secure
    // cookies). One hop is trusted: the client is the address the proxy
    // appended, not the first one, which the client itself may have written.
    trustProxy: trustProxy ? (_address: string, hop: number) => hop < 1 : false,
    routerOptions: { ignoreTrailingSlash: true },
    bodyLimit: 1024 * 1024
  }
}

/** Builds the whole application, ready to listen. */
export async function buildApp (config: Config, logger: FastifyServerOptions['logger'] = false): Promise<FastifyInstance> {
  const fastify = Fastify(fastifyOptions(logger, config.TRUST_PROXY)).withTypeProvider<TypeBoxTypeProvider>()
  await fastify.register(app, { config })
  await fastify.ready()
  return fastify as unknown as FastifyInstance
}
