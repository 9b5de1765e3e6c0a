// Each robot's compiled model on this node (docs/protocol.md §14.2): loaded
// at CONNECT, swapped on `robotModelChanged` (local, or relayed from another
// node), read by every type-4 frame without a database read.
//
// The slots are per robot, not per connection: all of a robot's connections
// on this node see one swap at once. Ordering: every change event gets a
// sequence number as it arrives; a slot takes a model only from something
// newer than what it holds. A CONNECT takes the current number before it
// reads the robot's row, and reads the row again when a change arrived in
// the meantime (the event comes after the commit, so a read after the event
// sees it): a robot that connects while its model changes ends with the new one.
import type { FastifyBaseLogger } from 'fastify'
import type { CompiledModel, ModelRef } from '../src/contract/models.js'

interface Slot {
  model: CompiledModel | null
  /** The sequence number of what the model came from. */
  seq: number
}

export interface RobotModelsDeps {
  /** The compiled validators of a version (services.models.compiled: cached per node). */
  compile: (ref: ModelRef) => Promise<CompiledModel>
  /** A robot's model was swapped on this node (not at CONNECT): its statistics follow. */
  swapped?: (uuid: string, model: CompiledModel | null) => void
  log: FastifyBaseLogger
}

/** How often a CONNECT reads the robot's row again while its model keeps changing, before it takes the last read. */
const MAX_REREADS = 5
/** How long a change is remembered for CONNECTs in flight (a CONNECT times out after 10 s). */
const CHANGE_MEMORY_MS = 60_000
/** Retries of a swap whose model could not be loaded (the database did not answer): from 1 s, doubling, at most this. */
const MAX_RETRY_MS = 30_000

export function createRobotModels ({ compile, swapped, log }: RobotModelsDeps) {
  const slots = new Map<string, Slot>()
  const changes = new Map<string, { seq: number, at: number }>()
  const timers = new Set<NodeJS.Timeout>()
  let seq = 0
  let closed = false

  const load = async (ref: ModelRef | null): Promise<CompiledModel | null> => ref === null ? null : await compile(ref)
  const changedSince = (uuid: string, mark: number): boolean => (changes.get(uuid)?.seq ?? 0) > mark

  function apply (uuid: string, ref: ModelRef | null, at: number, delay: number): void {
    load(ref).then((model) => {
      const slot = slots.get(uuid)
      // A newer change, or a CONNECT that read the row after this change, got there first.
      if (slot === undefined || slot.seq >= at) return
      slot.model = model
      slot.seq = at
      swapped?.(uuid, model)
    }, (err: unknown) => {
      const slot = slots.get(uuid)
      if (closed || slot === undefined || slot.seq >= at) return
      log.warn({ robot: uuid, model: ref, err: (err as Error).message, retryInMs: delay }, 'robot model not loaded: the robot keeps its previous model until it is')
      const timer = setTimeout(() => { timers.delete(timer); apply(uuid, ref, at, Math.min(delay * 2, MAX_RETRY_MS)) }, delay)
      timers.add(timer)
    })
  }

  function changed (uuid: string, ref: ModelRef | null): void {
    const at = ++seq
    const now = Date.now()
    if (changes.size >= 1000) {
      for (const [k, v] of changes) if (now - v.at > CHANGE_MEMORY_MS) changes.delete(k); else break
    }
    changes.delete(uuid) // re-inserted last: the map stays in time order
    changes.set(uuid, { seq: at, at: now })
    // A robot never connected here has no slot: its next CONNECT reads its row.
    if (slots.has(uuid)) apply(uuid, ref, at, 1000)
  }

  return {
    /** Taken at CONNECT before the robot's row is read. */
    mark (): number {
      return seq
    },

    /**
     * CONNECT: the model the row named, compiled, kept for the robot.
     * `reread` reads the row again (undefined: the robot is gone). Throws when the
     * model cannot be loaded (the database did not answer: CONNACK 3).
     */
    async admit (uuid: string, ref: ModelRef | null, mark: number, reread: () => Promise<ModelRef | null | undefined>): Promise<CompiledModel | null> {
      let current = ref
      let since = mark
      for (let attempt = 0; ; attempt++) {
        const model = await load(current)
        if (!changedSince(uuid, since) || attempt >= MAX_REREADS) {
          const slot = slots.get(uuid)
          if (slot === undefined) slots.set(uuid, { model, seq: since })
          else if (slot.seq <= since) { slot.model = model; slot.seq = since }
          return slots.get(uuid)?.model ?? null
        }
        since = seq
        const again = await reread()
        if (again === undefined) return model // the robot is gone: its connection is being closed
        current = again
      }
    },

    /** `robotModelChanged`: swapped within the time it takes to load the version (a compile at most once per node). */
    changed,

    /**
     * Cluster mode, Redis back: changes relayed while it was away are lost,
     * so the rows of the robots connected here are read again and any model
     * that differs is swapped as if its event had come.
     */
    async refresh (uuids: readonly string[], read: (uuid: string) => Promise<ModelRef | null | undefined>): Promise<void> {
      await Promise.all(uuids.map(async (uuid) => {
        const mark = seq
        const ref = await read(uuid).catch(() => undefined)
        const slot = slots.get(uuid)
        // gone, unreadable, or a change came meanwhile (its event is being applied)
        if (ref === undefined || slot === undefined || changedSince(uuid, mark)) return
        const held = slot.model === null ? null : { name: slot.model.name, version: slot.model.version }
        if (held?.name !== ref?.name || held?.version !== ref?.version) changed(uuid, ref)
      }))
    },

    /** The model a robot's frames are checked with; null: none (type-4 frames are refused). */
    of (uuid: string): CompiledModel | null {
      return slots.get(uuid)?.model ?? null
    },

    forget (uuid: string): void {
      slots.delete(uuid)
    },

    close (): void {
      closed = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
    }
  }
}

export type RobotModels = ReturnType<typeof createRobotModels>
