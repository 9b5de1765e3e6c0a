// fp plugin 'swagger': the OpenAPI 3 document at /docs/json, the UI at /docs
// (CONTRACT §7). Registered before any route so it sees every route.
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

export default fp(async (fastify, opts: { version: string }) => {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'United',
        description: 'Control plane of United, the robot fleet backend. Robots speak MQTT; see the README for topics.',
        version: opts.version
      },
      tags: [
        { name: 'users', description: 'user log-in (JWT)' },
        { name: 'robots', description: 'robots, their history and commands' },
        { name: 'management', description: 'staff management API' },
        { name: 'ops', description: 'health, readiness, metrics' }
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }
        }
      }
    }
  })
  await fastify.register(swaggerUi, { routePrefix: '/docs' })
}, { name: 'swagger' })
