// The typed event bus between the domain and its adapters: services emit, the
// broker and others listen, so the domain never imports what reacts to it.
import { EventEmitter } from 'node:events'
import type { Role } from './contract/roles.js'

export interface CommandIssued {
  id: string
  robotUuid: string
  command: string
  issuedBy: string
  issuedAt: string
  /** A model command's checked parameters (docs/protocol.md §14.3); absent for a mode. */
  params?: Record<string, unknown>
}

export interface FleetEvents {
  /** A command was stored as pending and must be published to the robot. */
  commandIssued: [CommandIssued]
  /** A robot was disabled, deleted or its secret rotated: close its connections. */
  robotRevoked: [{ robotUuid: string, reason: 'disabled' | 'deleted' | 'rotated' }]
  /**
   * A direct grant was made, changed, removed or expired: `role` is the
   * grant's role now (null: no grant), `expiresAt` its end (ISO 8601, null: none).
   */
  accessChanged: [{ userId: number, robotUuid: string, granted: boolean, role: Role | null, expiresAt: string | null }]
  /** A user's grant on a group was made, changed, removed or expired (role null: no grant). */
  groupGrantChanged: [{ groupId: number, userId: number, role: Role | null, expiresAt: string | null }]
  /** Robots entered or left a group: one event for any number of them. */
  groupRobotsChanged: [{ groupId: number, robotUuids: string[], added: boolean }]
  /** A group was deleted, with its robots and grants. */
  groupDeleted: [{ groupId: number }]
  /** An API key was deleted: close the connections it opened. */
  apiKeyRevoked: [{ userId: number, keyId: string }]
  /** A user's staff or active flag changed. */
  userChanged: [{ userId: number, isStaff: boolean, isActive: boolean }]
  /** A user's password was changed: end their admin sessions. */
  passwordChanged: [{ userId: number }]
  /** A user was deactivated or deleted: close their connections. */
  userRevoked: [{ userId: number }]
  /** A robot was given another model, or none (docs/protocol.md §14). */
  robotModelChanged: [{ robotUuid: string, model: { name: string, version: number } | null }]
  /** A robot's state changed (a command was acknowledged as done). */
  robotStateChanged: [{ robotUuid: string, state: string }]
}

export type FleetEventName = keyof FleetEvents

export interface EventBus {
  emit<K extends FleetEventName>(event: K, ...args: FleetEvents[K]): void
  on<K extends FleetEventName>(event: K, listener: (...args: FleetEvents[K]) => void): () => void
}

/**
 * A synchronous typed emitter. A listener that throws is logged by the caller's
 * `onError` and never breaks the emitter or the other listeners.
 */
export function createEventBus (onError: (err: unknown, event: string) => void = () => {}): EventBus {
  const emitter = new EventEmitter()
  emitter.setMaxListeners(0)
  return {
    emit (event, ...args) {
      for (const listener of emitter.listeners(event)) {
        try {
          (listener as (...a: unknown[]) => void)(...args)
        } catch (err) {
          onError(err, event)
        }
      }
    },
    on (event, listener) {
      emitter.on(event, listener as (...a: unknown[]) => void)
      return () => { emitter.off(event, listener as (...a: unknown[]) => void) }
    }
  }
}
