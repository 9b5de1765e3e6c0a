// The typed event bus between the domain and its adapters: services emit, the
// broker and others listen, so the domain never imports what reacts to it.
import { EventEmitter } from 'node:events'

export interface CommandIssued {
  id: string
  robotUuid: string
  command: string
  issuedBy: string
  issuedAt: string
}

export interface FleetEvents {
  /** A command was stored as pending and must be published to the robot. */
  commandIssued: [CommandIssued]
  /** A robot was disabled, deleted or its secret rotated: close its connections. */
  robotRevoked: [{ robotUuid: string, reason: 'disabled' | 'deleted' | 'rotated' }]
  /** A grant was added or removed. */
  accessChanged: [{ userId: number, robotUuid: string, granted: boolean }]
  /** A user's staff or active flag changed. */
  userChanged: [{ userId: number, isStaff: boolean, isActive: boolean }]
  /** A user's password was changed: end their admin sessions. */
  passwordChanged: [{ userId: number }]
  /** A user was deactivated or deleted: close their connections. */
  userRevoked: [{ userId: number }]
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
