// Who is behind each MQTT client, set once at CONNECT.
import type { Client } from 'aedes'

export interface RobotPrincipal { kind: 'robot', uuid: string, id: number }
/** Shared by every connection of the same user, so a flag change reaches all of them at once. */
export interface UserPrincipal { kind: 'user', id: number, username: string, isStaff: boolean }
export type BrokerPrincipal = RobotPrincipal | UserPrincipal

const principals = new WeakMap<Client, BrokerPrincipal>()

export function setPrincipal (client: Client, principal: BrokerPrincipal): void {
  principals.set(client, principal)
}

export function principalOf (client: Client | null | undefined): BrokerPrincipal | undefined {
  return client === null || client === undefined ? undefined : principals.get(client)
}

export function samePrincipal (a: BrokerPrincipal | undefined, b: BrokerPrincipal | undefined): boolean {
  if (a === undefined || b === undefined) return false
  return a.kind === 'robot' ? b.kind === 'robot' && a.uuid === b.uuid : b.kind === 'user' && a.id === b.id
}
