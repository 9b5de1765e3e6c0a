// Connections per identity across the cluster (MAX_CONNECTIONS_PER_USER,
// MAX_CONNECTIONS_PER_ROBOT): each node counts its own in
// `node-conns:<node>` (identity → open connections), a hash that expires
// with the node's heartbeat (renewed at every beat) and is deleted when the
// node is reaped. A CONNECT is counted by one Lua script that sums the live
// nodes' counts and adds one only under the cap, so that two nodes cannot
// both let the last one in. A crashed node's connections stop counting when
// its heartbeat key expires. While Redis cannot answer, a node counts its
// own connections only, and writes its counts again when Redis is back.
import type { Redis } from 'ioredis'

const ACQUIRE_LUA = `
local prefix = ARGV[1]
local me = ARGV[2]
local identity = ARGV[3]
local cap = tonumber(ARGV[4])
local mine = prefix .. 'node-conns:' .. me
if cap > 0 then
  local total = tonumber(redis.call('HGET', mine, identity) or '0')
  for _, node in ipairs(redis.call('HKEYS', prefix .. 'nodes')) do
    if node ~= me and redis.call('EXISTS', prefix .. 'alive:' .. node) == 1 then
      total = total + tonumber(redis.call('HGET', prefix .. 'node-conns:' .. node, identity) or '0')
    end
  end
  if total >= cap then return 0 end
end
redis.call('HINCRBY', mine, identity, 1)
redis.call('PEXPIRE', mine, ARGV[5])
return 1
`

const RELEASE_LUA = `
if redis.call('HINCRBY', KEYS[1], ARGV[1], -1) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
`

type CountRedis = Redis & {
  unitedAcquireConnection: (prefix: string, node: string, identity: string, cap: number, ttlMs: number) => Promise<number>
  unitedReleaseConnection: (key: string, identity: string) => Promise<number>
}

/** Counts connections per identity; `acquire` says whether one more is allowed (and counts it). */
export interface ConnectionCounter {
  acquire: (identity: string, cap: number) => Promise<boolean>
  release: (identity: string) => void
}

/** One node's own count (a lone node, or a cluster node while Redis is away). */
export function createLocalCounter (): ConnectionCounter & { counts: Map<string, number> } {
  const counts = new Map<string, number>()
  return {
    counts,
    async acquire (identity, cap) {
      const n = counts.get(identity) ?? 0
      if (cap > 0 && n >= cap) return false
      counts.set(identity, n + 1)
      return true
    },
    release (identity) {
      const n = (counts.get(identity) ?? 0) - 1
      if (n > 0) counts.set(identity, n)
      else counts.delete(identity)
    }
  }
}

export function createClusterCounter ({ redis, prefix, nodeId, ttlMs, isUp }: { redis: Redis, prefix: string, nodeId: string, ttlMs: number, isUp: () => boolean }) {
  redis.defineCommand('unitedAcquireConnection', { numberOfKeys: 0, lua: ACQUIRE_LUA })
  redis.defineCommand('unitedReleaseConnection', { numberOfKeys: 1, lua: RELEASE_LUA })
  const r = redis as CountRedis
  const local = createLocalCounter()
  const mine = `node-conns:${nodeId}`
  /** A count went unwritten (Redis away): the whole hash is written again at the next beat. */
  let stale = false
  return {
    async acquire (identity: string, cap: number): Promise<boolean> {
      if (isUp() && !stale) {
        try {
          if (await r.unitedAcquireConnection(prefix, nodeId, identity, cap, ttlMs) !== 1) return false
          local.counts.set(identity, (local.counts.get(identity) ?? 0) + 1)
          return true
        } catch {}
      }
      stale = true
      return await local.acquire(identity, cap)
    },
    release (identity: string): void {
      local.release(identity)
      if (stale || !isUp()) { stale = true; return }
      r.unitedReleaseConnection(mine, identity).catch(() => { stale = true })
    },
    /** At every beat: the hash lives as long as the node's heartbeat; written whole when it may be wrong. */
    async beat (rewrite: boolean): Promise<void> {
      if (rewrite || stale) {
        const m = redis.multi().del(mine)
        if (local.counts.size > 0) m.hset(mine, Object.fromEntries(local.counts)).pexpire(mine, ttlMs)
        await m.exec()
        stale = false
        return
      }
      await redis.pexpire(mine, ttlMs)
    }
  }
}

export type ClusterCounter = ReturnType<typeof createClusterCounter>
