// services/batch.ts: lookups of one turn of the event loop share one load.
import t from 'tap'
import { batchLookup } from '../../src/services/batch.js'

t.test('lookups made in the same turn share one load; each gets its own value, or undefined', async (t) => {
  const loads: string[][] = []
  const get = batchLookup(async (keys: string[]) => {
    loads.push(keys)
    return new Map(keys.filter((k) => k !== 'missing').map((k) => [k, k.toUpperCase()]))
  })
  const values = await Promise.all(['a', 'b', 'a', 'missing'].map(get))
  t.same(values, ['A', 'B', 'A', undefined])
  t.same(loads, [['a', 'b', 'missing']], 'one load, each key once')
  t.equal(await get('c'), 'C', 'a later lookup gets a load of its own')
  t.equal(loads.length, 2)
})

t.test('batches are cut at maxBatch keys', async (t) => {
  const sizes: number[] = []
  const get = batchLookup(async (keys: number[]) => { sizes.push(keys.length); return new Map(keys.map((k) => [k, k * 2])) }, 3)
  t.same(await Promise.all([1, 2, 3, 4, 5, 6, 7].map(get)), [2, 4, 6, 8, 10, 12, 14])
  t.same(sizes, [3, 3, 1])
})

t.test('a failed load rejects the lookups of its batch only', async (t) => {
  let fail = true
  const get = batchLookup(async (keys: string[]) => {
    if (fail) throw new Error('database down')
    return new Map(keys.map((k) => [k, k]))
  })
  await t.rejects(Promise.all([get('x'), get('y')]), /database down/)
  fail = false
  t.equal(await get('x'), 'x', 'the next batch loads again')
})
