// fp plugin 'services': the domain, decorated once as `fastify.services`.
import fp from 'fastify-plugin'
import type { Cluster } from '../cluster/index.js'
import type { Config } from '../config.js'
import { createEventBus } from '../events.js'
import { createServices, type Services } from '../services/index.js'

declare module 'fastify' {
  interface FastifyInstance { services: Services }
}

export default fp(async (fastify, opts: { config: Config, cluster?: Cluster }) => {
  const log = fastify.log.child({ module: 'services' })
  const { cluster } = opts
  const services = createServices({
    db: fastify.db,
    config: opts.config,
    log,
    // Cluster mode (docs/operations.md §4): tokens, log-in counters, the events that
    // cross nodes and presence come from Redis.
    ...(cluster === undefined
      ? {}
      : {
          tokenStore: cluster.tokenStore,
          attemptStore: cluster.attemptStore,
          events: cluster.relay(createEventBus((err, event) => { log.error({ err, event }, 'event listener failed') })),
          remotePresence: { commandConnected: async (uuid: string) => (await cluster.presence.get(uuid)).command > 0 }
        }),
    jwt: {
      sign: (payload, options) => fastify.jwt.sign(payload, { expiresIn: options.expiresIn }),
      verify: (token) => fastify.jwt.verify(token)
    }
  })
  fastify.decorate('services', services)
  // Registered after 'db', so this onClose runs before the database closes.
  fastify.addHook('onClose', async () => { await services.close() })
}, { name: 'services', dependencies: ['db', 'jwt'] })
