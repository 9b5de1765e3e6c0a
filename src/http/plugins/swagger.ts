// fp plugin 'swagger': the OpenAPI 3 document at /docs/json, the UI at /docs
// (docs/protocol.md §7), and the AsyncAPI 3 document of the MQTT side at
// /docs/asyncapi.json (docs/protocol.md §12). Registered before any route so it sees every route;
// a route leaves the document with `schema.hide` (the admin pages hide
// themselves in admin/site.ts, the Management API under /admin/api stays).
import type { AddressInfo } from 'node:net'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'
import { asyncApiDocument } from '../../contract/asyncapi.js'

export const ASYNCAPI_PATH = '/docs/asyncapi.json'

/** A Host header's name that is a plain DNS name or IP literal; anything else is not echoed. */
const HOST_NAME = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]{2,45}\])$/

export default fp(async (fastify, opts: { version: string }) => {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'United',
        description: `Control plane of United, the robot fleet backend. Robots and live dashboards speak MQTT: its topics, access rules and payloads are the AsyncAPI 3.0 document at [${ASYNCAPI_PATH}](${ASYNCAPI_PATH}).`,
        version: opts.version
      },
      externalDocs: { description: 'The MQTT API (AsyncAPI 3.0)', url: ASYNCAPI_PATH },
      tags: [
        { name: 'users', description: 'user log-in (JWT)' },
        { name: 'robots', description: 'robots, their history and commands' },
        { name: 'management', description: 'staff management API' },
        { name: 'ops', description: 'health, readiness, metrics' }
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT or API key', description: 'An access JWT (POST /users/obtain_token/), or one of your API keys (uk_…, POST /users/me/api_keys); the authentication header may carry either instead.' }
        }
      }
    }
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs' })

  fastify.get(ASYNCAPI_PATH, { schema: { hide: true } }, async (request, reply) => {
    const { config, broker } = fastify
    const fallback = config.HOST === '0.0.0.0' || config.HOST === '::' ? 'localhost' : config.HOST
    const http = fastify.server.address() as AddressInfo | null
    const host = HOST_NAME.test(request.hostname) ? request.hostname : fallback
    const httpPort = http?.port ?? config.HTTP_PORT
    void reply.header('cache-control', 'no-cache')
    // Built per request: every live model version is in it from its creation on (docs/protocol.md §14).
    const models = await fastify.services.models.allVersions()
    return asyncApiDocument({
      version: opts.version,
      host,
      restDocsUrl: `${request.protocol}://${host}:${request.port ?? httpPort}/docs`,
      mqttPort: broker.port,
      httpPort,
      tlsPort: broker.tlsPort,
      maxFrameBytes: config.MAX_FRAME_BYTES,
      models
    })
  })
}, { name: 'swagger' })
