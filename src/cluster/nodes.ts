// The nodes of a cluster (docs/operations.md §4): each node beats every
// CLUSTER_NODE_TIMEOUT / 5 seconds. A beat writes the node's line in `nodes`
// (started_at, last_seen_at, connected robots and users, its broker id) and
// renews `alive:<node>`, which expires after 60 % of the timeout. A node
// whose `alive:` key is gone is dead: the first live node to claim it
// (`reap:<node>`, SET NX) hands its robots' presence back (reaper in
// index.ts) and removes its line. Dead within the timeout, however the node
// stopped: kill -9, power loss, a partition.
import type { Redis } from 'ioredis'

export interface NodeInfo {
  node_id: string
  started_at: string
  last_seen_at: string
  robots: number
  users: number
}

export function createNodeRegistry ({ redis, nodeId, timeoutSeconds }: { redis: Redis, nodeId: string, timeoutSeconds: number }) {
  const aliveMs = Math.max(1000, Math.round(timeoutSeconds * 600))
  return {
    beatEveryMs: Math.max(500, Math.round(timeoutSeconds * 200)),
    /** How long `alive:<node>` lives after a beat. */
    aliveMs,
    /** Writes this node's line; true when the line was not there (the first beat, or this node was reaped or Redis emptied). */
    async beat (info: Omit<NodeInfo, 'node_id' | 'last_seen_at'>, now = new Date()): Promise<boolean> {
      const line: NodeInfo = { node_id: nodeId, ...info, last_seen_at: now.toISOString() }
      const answers = await redis.multi().hset('nodes', nodeId, JSON.stringify(line)).set(`alive:${nodeId}`, '1', 'PX', aliveMs).exec()
      return answers?.[0]?.[1] === 1
    },
    /** Every node with a line, and whether it is alive. */
    async all (): Promise<Array<NodeInfo & { alive: boolean }>> {
      const lines = await redis.hgetall('nodes')
      const ids = Object.keys(lines)
      if (ids.length === 0) return []
      const answers = await redis.pipeline(ids.map((id) => ['exists', `alive:${id}`])).exec() ?? []
      const alive = answers.map(([err, n]) => err === null && n === 1 ? 1 : 0)
      return ids.flatMap((id, i) => {
        try {
          return [{ ...(JSON.parse(lines[id] as string) as NodeInfo), node_id: id, alive: alive[i] === 1 }]
        } catch {
          return [{ node_id: id, started_at: '', last_seen_at: '', robots: 0, users: 0, alive: alive[i] === 1 }]
        }
      })
    },
    /** True for the one node that may reap `dead`. */
    async claim (dead: string): Promise<boolean> {
      return await redis.set(`reap:${dead}`, nodeId, 'EX', Math.max(30, timeoutSeconds * 2), 'NX') === 'OK'
    },
    async forget (dead: string): Promise<void> {
      await redis.multi().hdel('nodes', dead).del(`node-robots:${dead}`, `node-conns:${dead}`).exec()
    },
    async leave (): Promise<void> {
      await redis.multi().hdel('nodes', nodeId).del(`alive:${nodeId}`, `node-conns:${nodeId}`).exec()
    }
  }
}

export type NodeRegistry = ReturnType<typeof createNodeRegistry>
