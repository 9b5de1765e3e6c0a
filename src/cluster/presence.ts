// Presence across nodes (docs/protocol.md §3.3, §11): a robot is data-connected while
// any node holds a connection of it, command-connected while any of them is
// subscribed to its commands. Each node records, per robot, how many
// connections it holds (`presence:<uuid>`, field `n:<node>` = "data,command")
// and which robots it holds them for (`node-robots:<node>`). One Lua script
// updates a node's record and sums every node's, atomically, so the sum is
// never computed from a half-written state; `online` and `since` (when
// `online` last changed) live in the same hash.
//
// Why per node and not one flag: a robot that moves from node A to node B
// (a reconnect through the load balancer, a client-id takeover) is
// registered by B before A sees the old connection close. A's late
// disconnect then only removes A's own count, and the sum stays online: a
// stale disconnect never publishes a final `online: false`.
import type { Redis } from 'ioredis'

const PRESENCE_LUA = `
local field = 'n:' .. ARGV[1]
local d = tonumber(ARGV[2])
local c = tonumber(ARGV[3])
if d > 0 or c > 0 then
  redis.call('HSET', KEYS[1], field, d .. ',' .. c)
  redis.call('SADD', KEYS[2], ARGV[5])
else
  redis.call('HDEL', KEYS[1], field)
  redis.call('SREM', KEYS[2], ARGV[5])
end
local all = redis.call('HGETALL', KEYS[1])
local td, tc = 0, 0
for i = 1, #all, 2 do
  if string.sub(all[i], 1, 2) == 'n:' then
    local a, b = string.match(all[i + 1], '^(%d+),(%d+)$')
    if a then
      td = td + tonumber(a)
      tc = tc + tonumber(b)
    end
  end
end
local online = '0'
if td > 0 then online = '1' end
local since = redis.call('HGET', KEYS[1], 'since')
if redis.call('HGET', KEYS[1], 'online') ~= online or not since then
  since = ARGV[4]
  redis.call('HSET', KEYS[1], 'online', online, 'since', since)
end
if td > 0 then redis.call('PERSIST', KEYS[1]) else redis.call('EXPIRE', KEYS[1], 86400) end
return {td, tc, since}
`

/** A robot's connections summed over every node. */
export interface ClusterPresenceState { data: number, command: number, since: string }

type PresenceRedis = Redis & { unitedPresence: (key: string, nodeKey: string, node: string, data: number, command: number, now: string, uuid: string) => Promise<[number, number, string]> }

export function createClusterPresence ({ redis }: { redis: Redis }) {
  redis.defineCommand('unitedPresence', { numberOfKeys: 2, lua: PRESENCE_LUA })
  const r = redis as PresenceRedis
  return {
    /** Records what `node` holds of a robot now; the robot's state over all nodes. */
    async report (node: string, uuid: string, counts: { data: number, command: number }, now = new Date()): Promise<ClusterPresenceState> {
      const [data, command, since] = await r.unitedPresence(`presence:${uuid}`, `node-robots:${node}`, node, counts.data, counts.command, now.toISOString(), uuid)
      return { data: Number(data), command: Number(command), since }
    },
    /** The robot's state over all nodes, without changing it. */
    async get (uuid: string): Promise<ClusterPresenceState> {
      const all = await redis.hgetall(`presence:${uuid}`)
      let data = 0
      let command = 0
      for (const [k, v] of Object.entries(all)) {
        if (!k.startsWith('n:')) continue
        const [d, c] = v.split(',').map(Number)
        data += d ?? 0
        command += c ?? 0
      }
      return { data, command, since: all.since ?? new Date(0).toISOString() }
    },
    /** The robots a node holds connections of. */
    async robotsOf (node: string): Promise<string[]> {
      return await redis.smembers(`node-robots:${node}`)
    }
  }
}

export type ClusterPresence = ReturnType<typeof createClusterPresence>
