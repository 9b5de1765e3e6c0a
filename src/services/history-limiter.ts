// How many history reads (aggregates and exports) run at once: at most
// `perUser` per user and `perNode` on this node; one more is refused at once
// with 429 UNITED_BUSY and a Retry-After, never queued. A queue would only
// move the wait into the server, holding a request (and, for an export, its
// socket) for a read that a client can as well retry; a refusal costs no
// database work at all.
//
// In this process only: "per node" is what the node limit means, and in a
// cluster the per-user limit is per node as well (a user reaching two nodes
// through a balancer may run `perUser` reads on each). What it protects is
// the node's database connections and memory, and the frame writer's turn
// beside them, which are per node too.
import { Errors, withRetryAfter } from '../errors.js'

/** Seconds a refused history read is told to wait (Retry-After): places free up as reads end, most within a second or two. */
export const HISTORY_RETRY_AFTER = 1

export interface HistoryLimits { perUser: number, perNode: number }

export function createHistoryLimiter ({ perUser, perNode }: HistoryLimits) {
  const byUser = new Map<number, number>()
  let running = 0

  return {
    /**
     * Takes a place for user `userId`, or throws HISTORY_BUSY (with
     * Retry-After) when the user or the node has none left. Returns the
     * function that gives it back; calling it again does nothing.
     */
    acquire (userId: number): () => void {
      const mine = byUser.get(userId) ?? 0
      if (mine >= perUser || running >= perNode) throw withRetryAfter(new Errors.HISTORY_BUSY(), HISTORY_RETRY_AFTER)
      byUser.set(userId, mine + 1)
      running++
      let held = true
      return () => {
        if (!held) return
        held = false
        running--
        const left = (byUser.get(userId) ?? 1) - 1
        if (left <= 0) byUser.delete(userId)
        else byUser.set(userId, left)
      }
    },

    /** Places taken: on this node, and by one user. */
    inUse (userId?: number): number {
      return userId === undefined ? running : byUser.get(userId) ?? 0
    }
  }
}

export type HistoryLimiter = ReturnType<typeof createHistoryLimiter>
