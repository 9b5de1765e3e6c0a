// The memory token store's record of voided tokens (src/services/token-store.ts):
// a robot's live tokens are remembered as voided for the remembering time,
// expired ones are not, and the record is bounded: beyond its size the
// oldest are forgotten first (then they are unknown tokens again).
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createMemoryTokenStore, createVoidedSet } from '../../src/services/token-store.js'

t.test('revokeRobot remembers the robot\'s live tokens as voided, for the remembering time only', async (t) => {
  const store = createMemoryTokenStore({ voidedTtlSeconds: 1 })
  t.teardown(async () => { await store.close() })
  await store.put('live', 'robot-1', 60)
  await store.put('short', 'robot-1', 1)
  await store.put('other', 'robot-2', 60)
  await sleep(1100)
  t.same(await store.get('short'), null, 'a token that expired by itself is unknown')
  await store.revokeRobot('robot-1')
  t.same(await store.get('live'), { voided: true }, 'the live token is remembered as voided')
  t.same(await store.get('short'), null, 'the expired one is not remembered')
  t.same(await store.get('other'), { robotUuid: 'robot-2' }, 'another robot\'s token is untouched')
  t.same(await store.get('never-issued'), null)
  await sleep(1100)
  t.same(await store.get('live'), null, 'after the remembering time: unknown')
})

t.test('the record of voided tokens is bounded: the oldest are forgotten first', async (t) => {
  const voided = createVoidedSet(60, 3)
  voided.add(['a', 'b', 'c'])
  voided.add(['d'])
  t.equal(voided.size, 3, 'never more than the bound')
  t.notOk(voided.has('a'), 'the oldest is forgotten')
  t.ok(voided.has('b') && voided.has('c') && voided.has('d'), 'the newer ones are kept')
  voided.add(['b'])
  voided.add(['e'])
  t.ok(voided.has('b'), 'one added again counts as new')
  t.notOk(voided.has('c'), 'so the next oldest goes')
})

t.test('expired entries leave the record as new ones come', async (t) => {
  const voided = createVoidedSet(1, 100)
  voided.add(['a', 'b'])
  await sleep(1100)
  t.notOk(voided.has('a'), 'expired: not voided any more')
  voided.add(['c'])
  t.equal(voided.size, 1, 'the expired ones were swept')
})
