// The history lane (src/db/index.ts, historyLane): the reads of aggregates
// and exports run one at a time on a node, each starting no sooner than the
// previous one's duration after it ended (at most half of a core of the
// database), in the order they asked; one that waits longer than twice the
// statement timeout for its turn fails as a statement timeout does, and the
// reads behind it keep their turn.
import { TimeoutError } from 'sequelize'
import t from 'tap'
import { build } from '../helper.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms) }) }

t.test('one read at a time, in order, each after a pause as long as the previous one ran', async (t) => {
  const app = await build(t, { DATABASE_STATEMENT_TIMEOUT: '0' })
  const log: Array<{ i: number, start: number, end: number }> = []
  let running = 0
  let most = 0
  await Promise.all([0, 1, 2, 3].map(async (i) => await app.db.historyReads(async () => {
    running++
    most = Math.max(most, running)
    const start = performance.now()
    await sleep(60)
    running--
    log.push({ i, start, end: performance.now() })
  })))
  t.equal(most, 1, 'never two at once')
  t.same(log.map((r) => r.i), [0, 1, 2, 3], 'in the order they asked')
  for (let k = 1; k < log.length; k++) {
    const [before, after] = [log[k - 1], log[k]] as [typeof log[0], typeof log[0]]
    t.ok(after.start - before.end >= (before.end - before.start) - 5, `read ${k} started after a pause as long as read ${k - 1} ran`)
  }
  // a read under a millisecond leaves no pause: the next one starts at once
  const quick: number[] = []
  await Promise.all([0, 1].map(async () => await app.db.historyReads(async () => { quick.push(performance.now()) })))
  t.equal(quick.length, 2)
})

t.test('a read that waits longer than twice the statement timeout for its turn fails as a statement timeout, and the next ones still run', async (t) => {
  const app = await build(t, { DATABASE_STATEMENT_TIMEOUT: '0.2' })
  const first = app.db.historyReads(async () => { await sleep(600); return 'first' })
  const second = app.db.historyReads(async () => 'second')
  await t.rejects(second, TimeoutError, 'refused after waiting 400 ms')
  t.equal(await first, 'first', 'the running read is not disturbed')
  await sleep(650) // the first read's pause
  t.equal(await app.db.historyReads(async () => 'third'), 'third', 'a later read runs')
  t.rejects(app.db.historyReads(async () => { throw new Error('boom') }), /boom/, 'a failing read fails alone')
  t.equal(await app.db.historyReads(async () => 'fifth'), 'fifth', 'and gives the lane back')
})
