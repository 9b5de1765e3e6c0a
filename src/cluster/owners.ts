// Who holds each client id (broker/takeover.ts): `owner:<client id>` = the
// broker id of the connection that holds it, for as long as the connection
// lives. Written when a connection is registered, deleted when it ends (if
// still its own: a takeover from another node wrote the new one's), its TTL
// renewed every OWNER_TTL / 3 while it lives. `node-owners:<node>` lists the
// client ids a node wrote, so that a dead node's records are deleted by the
// node that reaps it, and a restarted node's by itself, at once.
import type { Redis } from 'ioredis'

/** Seconds an ownership record outlives the last renewal of its connection's (its node died unnoticed: the whole cluster stopped). */
export const OWNER_TTL = 600

/** Deletes the records in `node-owners:<node>` still held by that node (not by `keep`, its new start). */
const FORGET_LUA = `
local node = ARGV[1]
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[2] .. 'owner:' .. id
  local owner = redis.call('GET', key)
  if owner ~= ARGV[3] then
    if owner and string.match(owner, '^(.*)%.[^.]*$') == node then redis.call('DEL', key) end
    redis.call('SREM', KEYS[1], id)
  end
end
return 1
`

const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
`

type OwnerRedis = Redis & {
  unitedForgetOwners: (nodeOwners: string, node: string, prefix: string, keep: string) => Promise<number>
  unitedReleaseOwner: (owner: string, nodeOwners: string, brokerId: string, clientId: string) => Promise<number>
}

export function createOwnerRegistry ({ redis, prefix, nodeId, brokerId }: { redis: Redis, prefix: string, nodeId: string, brokerId: string }) {
  redis.defineCommand('unitedForgetOwners', { numberOfKeys: 1, lua: FORGET_LUA })
  redis.defineCommand('unitedReleaseOwner', { numberOfKeys: 2, lua: RELEASE_LUA })
  const r = redis as OwnerRedis
  const key = (clientId: string): string => `owner:${clientId}`
  const mine = `node-owners:${nodeId}`
  return {
    brokerId,
    /** The client id is this connection's now. */
    async claim (clientId: string): Promise<void> {
      await redis.multi().set(key(clientId), brokerId, 'EX', OWNER_TTL).sadd(mine, clientId).expire(mine, OWNER_TTL).exec()
    },
    /** The broker id holding the client id, or null. */
    async owner (clientId: string): Promise<string | null> {
      return await redis.get(key(clientId))
    },
    /** The connection ended: its record goes, unless another broker's connection took the id over. */
    async release (clientId: string): Promise<void> {
      await r.unitedReleaseOwner(key(clientId), mine, brokerId, clientId)
    },
    /** Writes again the records of the connections this node holds (Redis lost them: emptied, or this node was taken for dead). */
    async claimAll (clientIds: Iterable<string>): Promise<void> {
      const pipeline = redis.pipeline()
      for (const id of clientIds) pipeline.set(key(id), brokerId, 'EX', OWNER_TTL).sadd(mine, id)
      pipeline.expire(mine, OWNER_TTL)
      await pipeline.exec()
    },
    /** Renews the records of the connections this node holds. */
    async renew (clientIds: Iterable<string>): Promise<void> {
      const pipeline = redis.pipeline()
      for (const id of clientIds) pipeline.expire(key(id), OWNER_TTL)
      pipeline.expire(mine, OWNER_TTL)
      await pipeline.exec()
    },
    /** A dead node's records (or this node's previous start's) are gone. */
    async forgetNode (node: string): Promise<void> {
      await r.unitedForgetOwners(`node-owners:${node}`, node, prefix, node === nodeId ? brokerId : '')
    }
  }
}

export type OwnerRegistry = ReturnType<typeof createOwnerRegistry>
