// MQTT connections opened with an API key (docs/protocol.md §13.4). The
// broker's user principal is shared by all of a user's connections
// (access-cache.ts), so which key opened a connection is kept here, per
// client. Deleting a key (apiKeyRevoked, from any node) closes exactly the
// connections it opened; a key's expires_at closes them within EXPIRY_CHECK_MS.
import type { Aedes, Client } from 'aedes'
import type { EventBus } from '../src/events.js'

/** How often the open key connections are checked against their keys' ends. */
export const EXPIRY_CHECK_MS = 250
/** How long a deletion is remembered for log-ins that checked the key just before it. */
const REVOKED_MEMORY_MS = 60_000

export interface KeyUse { keyId: string, userId: number, expiresAt: number | null }

const keyOf = new WeakMap<Client, KeyUse>()

/** Records the key a connection logs in with (at CONNECT, before it is accepted). */
export function setApiKey (client: Client, use: KeyUse): void {
  keyOf.set(client, use)
}

export function apiKeyOf (client: Client): KeyUse | undefined {
  return keyOf.get(client)
}

export function createKeyConnections ({ aedes, events, close }: { aedes: Aedes, events: EventBus, close: (client: Client) => Promise<void> }) {
  const open = new Map<Client, KeyUse>()
  // Keys deleted lately: a log-in that checked one just before its deletion is closed when it arrives.
  const revokedAt = new Map<string, number>()

  const ended = (use: KeyUse, now: number): boolean => revokedAt.has(use.keyId) || (use.expiresAt !== null && use.expiresAt <= now)
  const shut = (client: Client): void => {
    open.delete(client)
    void close(client)
  }

  const onClient = (client: Client): void => {
    const use = keyOf.get(client)
    if (use === undefined) return
    if (ended(use, Date.now())) shut(client)
    else open.set(client, use)
  }
  const onDisconnect = (client: Client): void => { open.delete(client) }
  aedes.on('client', onClient)
  aedes.on('clientDisconnect', onDisconnect)

  const off = events.on('apiKeyRevoked', ({ keyId }) => {
    const now = Date.now()
    for (const [k, at] of revokedAt) if (now - at > REVOKED_MEMORY_MS) revokedAt.delete(k)
    revokedAt.set(keyId, now)
    for (const [client, use] of open) if (use.keyId === keyId) shut(client)
  })

  const timer = setInterval(() => {
    const now = Date.now()
    for (const [client, use] of open) if (use.expiresAt !== null && use.expiresAt <= now) shut(client)
  }, EXPIRY_CHECK_MS)
  timer.unref()

  return {
    get size (): number { return open.size },
    close (): void {
      clearInterval(timer)
      off()
      aedes.off('client', onClient)
      aedes.off('clientDisconnect', onDisconnect)
      open.clear()
    }
  }
}
