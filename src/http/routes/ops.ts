// /health, /ready and /metrics (docs/operations.md §7), and / leading to the admin pages.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'

/** The oldest a /metrics answer may be, in milliseconds. */
export const METRICS_MAX_AGE_MS = 1000

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  // The bare address (the banner's, a browser's guess) leads to the admin
  // pages rather than a 404; not part of the API, so not in /docs.
  fastify.get('/', { logLevel: 'warn', schema: { hide: true } }, async (_request, reply) => await reply.redirect('/admin', 302))

  fastify.get('/health', {
    logLevel: 'warn',
    schema: { tags: ['ops'], summary: 'The process is up', response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  // docs/operations.md §7: ready while the database answers; Redis is reported, and
  // its absence does not make a node unready (it keeps serving its own clients).
  const redisState = Type.Union([Type.Literal('ok'), Type.Literal('down'), Type.Literal('off')], { description: "cluster mode's Redis: ok, down, or off without REDIS_URL" })
  fastify.get('/ready', {
    logLevel: 'warn',
    schema: {
      tags: ['ops'],
      summary: 'The database is reachable (and, in cluster mode, how Redis is)',
      response: {
        200: Type.Object({ status: Type.Literal('ready'), database: Type.Literal('ok'), redis: redisState }),
        503: Type.Object({
          statusCode: Type.Integer(),
          error: Type.String(),
          message: Type.String(),
          code: Type.Optional(Type.String()),
          status: Type.Optional(Type.Literal('unready')),
          database: Type.Optional(Type.Literal('down')),
          redis: Type.Optional(redisState)
        }, { description: 'the database is unreachable: an error body (docs/protocol.md §7) with status, database and redis (docs/operations.md §7)' })
      }
    }
  }, async (request, reply) => {
    const redis = fastify.cluster === null ? 'off' as const : fastify.cluster.redisStatus()
    try {
      await fastify.db.ping()
    } catch (err) {
      request.log.warn({ err }, 'readiness check failed')
      return await reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'database unavailable', code: 'UNITED_DATABASE_UNAVAILABLE', status: 'unready', database: 'down', redis })
    }
    return { status: 'ready' as const, database: 'ok' as const, redis }
  })

  // Every series is read from memory, so a scrape costs the same whatever
  // the size of the tables; rendering them all still takes the event loop,
  // which every robot's acks share, about a millisecond. Scrapes that come
  // faster than once per METRICS_MAX_AGE_MS get the text of the last render
  // (or share the one under way): Prometheus, every 15 s or so, sees
  // nothing of it, and four anonymous scrapers back to back (1,200 scrapes a
  // second in the abuse bench) cost one render a second instead of the
  // fleet's ack p99.
  let rendered: { at: number, text: Promise<string> } | null = null
  fastify.get('/metrics', {
    logLevel: 'warn',
    schema: { tags: ['ops'], summary: 'Prometheus metrics (text exposition format), rendered at most once a second', produces: ['text/plain'] }
  }, async (request, reply) => {
    const { registry } = fastify.metrics
    const now = performance.now()
    if (rendered === null || now - rendered.at >= METRICS_MAX_AGE_MS) {
      const text = registry.metrics()
      rendered = { at: now, text }
      text.catch(() => { if (rendered?.text === text) rendered = null })
    }
    return await reply.type(registry.contentType).send(await rendered.text)
  })
}

export default routes
