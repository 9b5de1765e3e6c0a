// fp plugin 'services': the domain, decorated once as `fastify.services`.
import fp from 'fastify-plugin'
import type { Config } from '../config.js'
import { createServices, type Services } from '../services/index.js'

declare module 'fastify' {
  interface FastifyInstance { services: Services }
}

export default fp(async (fastify, opts: { config: Config }) => {
  const services = createServices({
    db: fastify.db,
    config: opts.config,
    log: fastify.log.child({ module: 'services' }),
    jwt: {
      sign: (payload, options) => fastify.jwt.sign(payload, { expiresIn: options.expiresIn }),
      verify: (token) => fastify.jwt.verify(token)
    }
  })
  fastify.decorate('services', services)
  // Registered after 'db', so this onClose runs before the database closes.
  fastify.addHook('onClose', async () => { await services.close() })
}, { name: 'services', dependencies: ['db', 'jwt'] })
