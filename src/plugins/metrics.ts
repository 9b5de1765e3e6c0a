// fp plugin 'metrics': the registry and the instruments, decorated as
// `fastify.metrics`; the broker counts frames and connections into it.
import fp from 'fastify-plugin'
import { createMetrics, type Metrics } from '../metrics.js'

declare module 'fastify' {
  interface FastifyInstance { metrics: Metrics }
}

export default fp(async (fastify) => {
  const metrics = createMetrics()
  // Cluster mode: every series names its node (docs/operations.md §4), as Prometheus' target labels would.
  if (fastify.cluster !== null) metrics.registry.setDefaultLabels({ node: fastify.config.nodeId })
  const { frameWriter, commands, retention, commandRetention } = fastify.services
  frameWriter.observe((rows, seconds) => {
    metrics.batchSize.observe(rows)
    metrics.commitSeconds.observe(seconds)
  })
  metrics.gauge('united_frame_queue_depth', 'Frames waiting to be written', () => frameWriter.depth)
  metrics.counter('united_frames_expired_total', 'Frames removed by retention (FRAME_RETENTION_DAYS)', () => retention.removed)
  metrics.counter('united_commands_removed_total', 'Finished commands removed by retention (COMMAND_RETENTION_DAYS)', () => commandRetention.removed)
  // Read from memory, never from the commands table: a scrape costs the same
  // whatever the size of the tables. Open commands are the whole database's,
  // counted every few seconds in the background; finished ones are counted by
  // the node that finished them (sum them over the nodes).
  metrics.labelledGauge('united_commands', 'Open commands (queued, pending, delivered) in the database, counted every few seconds', 'status', () => commands.countByStatus().open)
  metrics.labelledCounter('united_commands_finished_total', 'Commands this node finished (done, failed, expired, cancelled)', 'status', () => commands.countByStatus().finished)
  fastify.decorate('metrics', metrics)
}, { name: 'metrics', dependencies: ['services'] })
