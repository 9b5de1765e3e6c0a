// fp plugin 'metrics': the registry and the instruments, decorated as
// `fastify.metrics`; the broker counts frames and connections into it.
import fp from 'fastify-plugin'
import { createMetrics, type Metrics } from '../metrics.js'

declare module 'fastify' {
  interface FastifyInstance { metrics: Metrics }
}

export default fp(async (fastify) => {
  const metrics = createMetrics()
  // Cluster mode: every series names its node (CONTRACT §10), as Prometheus' target labels would.
  if (fastify.cluster !== null) metrics.registry.setDefaultLabels({ node: fastify.config.nodeId })
  const { frameWriter, commands, retention } = fastify.services
  frameWriter.observe((rows, seconds) => {
    metrics.batchSize.observe(rows)
    metrics.commitSeconds.observe(seconds)
  })
  metrics.gauge('united_frame_queue_depth', 'Frames waiting to be written', () => frameWriter.depth)
  metrics.counter('united_frames_expired_total', 'Frames removed by retention (FRAME_RETENTION_DAYS)', () => retention.removed)
  metrics.labelledGauge('united_commands', 'Commands by status', 'status', async () => await commands.countByStatus())
  fastify.decorate('metrics', metrics)
}, { name: 'metrics', dependencies: ['services'] })
