// Lookups by key that arrive in the same turn of the event loop, answered by
// one query: a fleet that reconnects at once asks for thousands of robot rows
// within milliseconds, and one query each cost the database connection a
// round trip and Sequelize its per-query work (5,000 robots: ~2 s of socket
// writes alone in a profile of the storm).

/** Returns `get(key)`: resolves with the value `load` found for it, or undefined. */
export function batchLookup<K, V> (load: (keys: K[]) => Promise<Map<K, V>>, maxBatch = 1000): (key: K) => Promise<V | undefined> {
  let waiting = new Map<K, Array<{ resolve: (v: V | undefined) => void, reject: (err: unknown) => void }>>()
  let scheduled = false

  function run (): void {
    scheduled = false
    const batch = waiting
    waiting = new Map()
    const keys = [...batch.keys()]
    for (let i = 0; i < keys.length; i += maxBatch) {
      const slice = keys.slice(i, i + maxBatch)
      load(slice).then((found) => {
        for (const key of slice) for (const w of batch.get(key) ?? []) w.resolve(found.get(key))
      }, (err: unknown) => {
        for (const key of slice) for (const w of batch.get(key) ?? []) w.reject(err)
      })
    }
  }

  return async (key) => await new Promise<V | undefined>((resolve, reject) => {
    let list = waiting.get(key)
    if (list === undefined) waiting.set(key, list = [])
    list.push({ resolve, reject })
    if (!scheduled) {
      scheduled = true
      setImmediate(run)
    }
  })
}
