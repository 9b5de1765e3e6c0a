// Who is behind each MQTT client, set once at CONNECT.
import type { Client } from 'aedes'

export interface RobotPrincipal { kind: 'robot', uuid: string, id: number }
/** Shared by every connection of the same user, so a flag change reaches all of them at once. */
export interface UserPrincipal { kind: 'user', id: number, username: string, isStaff: boolean }
export type BrokerPrincipal = RobotPrincipal | UserPrincipal

const principals = new WeakMap<Client, BrokerPrincipal>()
/** Connections the server is closing because their principal lost its rights. */
const revoked = new WeakSet<Client>()

/** The revocation mark taken when each client's log-in began (see revokedSince). */
const marks = new WeakMap<Client, number>()

export function setPrincipal (client: Client, principal: BrokerPrincipal, mark = revocationMark()): void {
  principals.set(client, principal)
  marks.set(client, mark)
}

export function principalOf (client: Client | null | undefined): BrokerPrincipal | undefined {
  return client === null || client === undefined ? undefined : principals.get(client)
}

export function samePrincipal (a: BrokerPrincipal | undefined, b: BrokerPrincipal | undefined): boolean {
  if (a === undefined || b === undefined) return false
  return a.kind === 'robot' ? b.kind === 'robot' && a.uuid === b.uuid : b.kind === 'user' && a.id === b.id
}

/**
 * Marks a connection as revoked: from now on nothing it sends is authorized,
 * its will message included (docs/protocol.md §2.4), while it is being closed.
 */
export function revokeClient (client: Client): void {
  revoked.add(client)
}

export function isRevoked (client: Client | null | undefined): boolean {
  return client !== null && client !== undefined && revoked.has(client)
}

/**
 * The client id as the broker keys it: scoped to its identity (docs/protocol.md §3.3),
 * so that a connection can take over only a session of its own identity, and
 * never block or close another's, whatever client id either uses.
 */
export function scopedClientId (principal: BrokerPrincipal, clientId: string): string {
  return principal.kind === 'robot' ? `robot:${principal.uuid}:${clientId}` : `user:${principal.id}:${clientId}`
}

/** Client-controlled text for a log line: at most `max` characters. */
export function short (value: string | undefined | null, max = 64): string | undefined {
  if (value === undefined || value === null) return undefined
  return value.length <= max ? value : `${value.slice(0, max)}…(${value.length})`
}

/** The identity behind a principal: `robot:<uuid>` or `user:<id>`. */
export function identityKey (principal: { kind: 'robot', uuid: string } | { kind: 'user', id: number }): string {
  return principal.kind === 'robot' ? `robot:${principal.uuid}` : `user:${principal.id}`
}

// Revocations by identity, in order: a log-in that began before its
// identity's revocation and ends after it (its token was checked before the
// token was voided) is refused, and a client registered in that gap is
// closed. Entries are needed only while such log-ins can be in flight.
let revocations = 0
const revokedAt = new Map<string, { seq: number, at: number }>()
const REVOCATION_MEMORY_MS = 60_000

export function revocationMark (): number {
  return revocations
}

/** Records that an identity lost its rights now (called with the revocation event, after its tokens were voided). */
export function markRevoked (identity: Parameters<typeof identityKey>[0]): void {
  const key = identityKey(identity)
  const now = Date.now()
  if (revokedAt.size >= 1000) {
    for (const [k, v] of revokedAt) if (now - v.at > REVOCATION_MEMORY_MS) revokedAt.delete(k)
  }
  revokedAt.delete(key) // re-inserted last: the map stays in time order
  revokedAt.set(key, { seq: ++revocations, at: now })
}

/** True when `key` was revoked after `mark` was taken (at the start of a log-in). */
export function revokedSince (key: string, mark: number): boolean {
  return (revokedAt.get(key)?.seq ?? 0) > mark
}

/** True when the client's identity was revoked after its log-in began. */
export function revokedSinceLogin (client: Client): boolean {
  const who = principals.get(client)
  return who !== undefined && revokedSince(identityKey(who), marks.get(client) ?? 0)
}
