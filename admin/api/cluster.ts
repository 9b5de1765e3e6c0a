// Management API, the cluster (docs/protocol.md §8): this node's id and every live
// node with its connected robots and users. Without REDIS_URL the list holds
// this node alone; in cluster mode it is read from the nodes' heartbeats in
// Redis, and while Redis cannot be reached it holds this node alone too
// (with `redis: "down"` on /ready saying why).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { BearerSecurity, DateTime, errorResponses } from '../../src/http/schemas/common.js'

const NodeSchema = Type.Object({
  node_id: Type.String(),
  started_at: DateTime,
  last_seen_at: DateTime,
  robots: Type.Integer({ minimum: 0, description: 'robots with an open MQTT connection to this node' }),
  users: Type.Integer({ minimum: 0, description: 'users with an open MQTT connection to this node' })
})

const ClusterSchema = Type.Object({
  node_id: Type.String({ description: 'the node that answered' }),
  nodes: Type.Array(NodeSchema, { description: 'every live node, this one included, by node id' })
})

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const startedAt = fastify.cluster?.startedAt ?? new Date()
  fastify.addHook('onRequest', fastify.requireStaff)
  fastify.get('/cluster', {
    schema: {
      tags: ['management'],
      security: BearerSecurity,
      summary: 'This node and every live node of the cluster',
      response: { 200: ClusterSchema, ...errorResponses(401, 403) }
    }
  }, async (request) => {
    const nodeId = fastify.config.nodeId
    const self = {
      node_id: nodeId,
      started_at: startedAt.toISOString(),
      last_seen_at: new Date().toISOString(),
      robots: fastify.broker.connectedRobots(),
      users: fastify.broker.connectedUsers()
    }
    const { cluster } = fastify
    if (cluster === null) return { node_id: nodeId, nodes: [self] }
    try {
      const others = (await cluster.nodes.all()).filter((n) => n.alive && n.node_id !== nodeId)
        .map(({ node_id: id, started_at: started, last_seen_at: seen, robots, users }) => ({ node_id: id, started_at: started, last_seen_at: seen, robots, users }))
      return { node_id: nodeId, nodes: [self, ...others].sort((a, b) => a.node_id.localeCompare(b.node_id)) }
    } catch (err) {
      request.log.warn({ err: (err as Error).message }, 'cluster nodes unavailable (Redis): this node only')
      return { node_id: nodeId, nodes: [self] }
    }
  })
}

export default routes
