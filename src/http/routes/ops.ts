// /health, /ready and /metrics (CONTRACT §9).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    logLevel: 'warn',
    schema: { tags: ['ops'], summary: 'The process is up', response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  // CONTRACT §10: ready while the database answers; Redis is reported, and
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
        }, { description: 'the database is unreachable: an error body (CONTRACT §7) with status, database and redis (§10)' })
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

  fastify.get('/metrics', {
    logLevel: 'warn',
    schema: { tags: ['ops'], summary: 'Prometheus metrics (text exposition format)', produces: ['text/plain'] }
  }, async (request, reply) => {
    const { registry } = fastify.metrics
    return await reply.type(registry.contentType).send(await registry.metrics())
  })
}

export default routes
