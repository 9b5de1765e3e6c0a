// /health, /ready and /metrics (CONTRACT §9).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errorResponses } from '../schemas/common.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/health', {
    logLevel: 'warn',
    schema: { tags: ['ops'], summary: 'The process is up', response: { 200: Type.Object({ status: Type.Literal('ok') }) } }
  }, async () => ({ status: 'ok' as const }))

  fastify.get('/ready', {
    logLevel: 'warn',
    schema: {
      tags: ['ops'],
      summary: 'The database is reachable',
      response: { 200: Type.Object({ status: Type.Literal('ready'), database: Type.String() }), ...errorResponses(503) }
    }
  }, async (request, reply) => {
    try {
      await fastify.db.ping()
    } catch (err) {
      request.log.warn({ err }, 'readiness check failed')
      return await reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'database unavailable', code: 'UNITED_DATABASE_UNAVAILABLE' })
    }
    return { status: 'ready' as const, database: fastify.db.dialect }
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
