// The live panel's plots (admin/public/plot.js), run here the way the browser
// runs them, in a context of their own: their ticks are the history charts'
// own (admin/charts.ts), their time axis is on round UTC seconds or minutes,
// and no value a robot can send (any finite double) makes them loop, overflow
// or put a pixel outside the plot. The drawing into the page's SVG (axes,
// labels, units) is checked in a real browser, browser-e2e.test.ts.
import { readFileSync } from 'node:fs'
import { createContext, runInContext } from 'node:vm'
import t, { type Test } from 'tap'
import { niceTicks } from '../../admin/charts.js'

interface Tick { at: number, label: string }
interface Model { plot: { left: number, right: number, top: number, bottom: number }, width: number, height: number, yTitle: string, xTitle: string, xTicks: Tick[], yTicks: Tick[], lines: string[], dots: Array<{ x: number, y: number, kind: string }>, empty: boolean }
interface Plot {
  niceTicks: typeof niceTicks
  timeTicks: (from: number, to: number) => Tick[]
  labeller: (step: number, largest: number) => (v: number) => string
  timeModel: (points: Array<{ t: number, v: unknown }>, from: number, to: number, unit: string) => Model
  pathModel: (points: Array<{ x: unknown, y: unknown }>, unit: string) => Model
  MAX_TICKS: number
}

const source = readFileSync(new URL('../../admin/public/plot.js', import.meta.url), 'utf8')
const context = createContext({})
// A guard, not a measure: a plot that loops fails here by name instead of hanging the run.
const GUARD = { timeout: 5000 }
runInContext(source, context, GUARD)
const plot = (context as { unitedPlot: Plot }).unitedPlot
/** Runs `f` inside the plot's context, under the guard. */
function guarded<T> (f: (p: Plot) => T): T {
  (context as { job?: unknown }).job = f
  return runInContext('job(unitedPlot)', context, GUARD) as T
}

const MAX = Number.MAX_VALUE
const EXTREMES = [0, -0, 1, -1, 1e-300, -1e-300, Number.MIN_VALUE, -Number.MIN_VALUE, 1e-7, 0.001, 1.37e12, 1e10, 10000000000.000002, 1e308, MAX, -MAX, 123456.789, -42.5]

t.test('the live plots\' ticks are the history charts\' ticks, for ordinary and extreme ranges', async (t) => {
  const pairs: Array<[number, number]> = [[0, 2.2], [0, 1.8], [0, 100], [-3, 7], [5, 5], [0, 0], [1e10, 10000000000.000002], [-MAX, MAX], [MAX, MAX], [-MAX, -MAX], [Number.MIN_VALUE, 2 * Number.MIN_VALUE], [0, 1.37e12], [1e-300, 1e-299], [NaN, 3], [Infinity, -Infinity]]
  for (const a of EXTREMES) for (const b of EXTREMES) pairs.push([a, b])
  let seed = 7
  const random = (): number => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }
  for (let i = 0; i < 300; i++) pairs.push([(random() - 0.5) * 10 ** Math.floor(random() * 40 - 20), (random() - 0.5) * 10 ** Math.floor(random() * 40 - 20)])
  let differ = 0
  for (const [lo, hi] of pairs) {
    for (const count of [4, 5, 6]) {
      const mine = guarded((p) => p.niceTicks(lo, hi, count))
      const theirs = niceTicks(lo, hi, count)
      if (JSON.stringify(mine) !== JSON.stringify(theirs)) {
        differ++
        t.same(mine, theirs, `niceTicks(${lo}, ${hi}, ${count})`)
      }
      if (mine.ticks.length > plot.MAX_TICKS) t.fail(`${mine.ticks.length} ticks for ${lo}..${hi}`)
    }
  }
  t.equal(differ, 0, `${pairs.length * 3} ranges, the same ticks`)
})

t.test('labels: fixed with the step\'s decimals, or exponent form for huge values or tiny steps', async (t) => {
  const label = (step: number, largest: number, v: number): string => guarded((p) => p.labeller(step, largest)(v))
  t.equal(label(0.5, 2, 1.5), '1.5')
  t.equal(label(10, 100, -0), '0')
  t.equal(label(0.001, 1, -0.0001), '0.000')
  t.equal(label(5e8, 1.1e10, 1.05e10), '1.05e10')
  t.equal(label(1e-6, 1, 2e-6), '2e-6')
  t.equal(label(1e308, MAX, -MAX), '-2e308')
})

t.test('time ticks: round UTC seconds for half a minute, minutes for the 5-minute window, at most 5', async (t) => {
  const base = Date.parse('2026-12-07T14:00:03Z')
  t.same(plot.timeTicks(base, base + 30_000).map((x) => x.label), ['14:00:10', '14:00:20', '14:00:30'], '30 s: every 10 s')
  t.same(plot.timeTicks(base, base + 300_000).map((x) => x.label), ['14:02', '14:04'], '5 min: every 2 minutes')
  t.same(plot.timeTicks(base, base + 4_000).map((x) => x.label), ['14:00:03', '14:00:04', '14:00:05', '14:00:06', '14:00:07'], '4 s: every second, both ends')
  t.same(plot.timeTicks(base, base + 3 * 86_400_000).map((x) => x.label), ['12-08', '12-09', '12-10'], 'days, should the window ever be that long')
  t.same(plot.timeTicks(base, base - 1), [], 'an empty window has no ticks')
  t.same(plot.timeTicks(NaN, base), [])
  for (const [from, to] of [[-8.64e15, 8.64e15], [0, MAX], [-MAX, MAX], [base, base]] as Array<[number, number]>) {
    const ticks = guarded((p) => p.timeTicks(from, to))
    t.ok(ticks.length <= 6, `${from}..${to}: ${ticks.length} ticks`)
  }
})

/** Everything a model would write into the SVG: finite, rounded to 0.1, inside the drawing. */
function checkModel (t: Test, model: Model, name: string): void {
  const problems: string[] = []
  const inside = (x: number, y: number): boolean => Number.isFinite(x) && Number.isFinite(y) && x >= model.plot.left - 0.05 && x <= model.plot.right + 0.05 && y >= model.plot.top - 0.05 && y <= model.plot.bottom + 0.05
  for (const d of model.dots) if (!inside(d.x, d.y)) problems.push(`dot ${d.x},${d.y}`)
  for (const line of model.lines) {
    for (const pair of line.split(' ')) {
      const [x, y] = pair.split(',').map(Number) as [number, number]
      if (!inside(x, y) || !/^-?\d+(\.\d)?,-?\d+(\.\d)?$/.test(pair)) problems.push(`line point ${pair}`)
    }
  }
  for (const tick of model.xTicks) if (!(tick.at >= model.plot.left - 0.05 && tick.at <= model.plot.right + 0.05)) problems.push(`x tick at ${tick.at}`)
  for (const tick of model.yTicks) if (!(tick.at >= model.plot.top - 0.05 && tick.at <= model.plot.bottom + 0.05)) problems.push(`y tick at ${tick.at}`)
  for (const tick of [...model.xTicks, ...model.yTicks]) if (tick.label.length > 24) problems.push(`label ${tick.label}`)
  if (model.yTicks.length > plot.MAX_TICKS || model.xTicks.length > plot.MAX_TICKS) problems.push('too many ticks')
  t.same(problems, [], name)
}

t.test('speed over time: a line per run of samples, broken where the robot stopped sending; axes with units and times', async (t) => {
  const to = Date.parse('2026-12-07T14:05:00Z')
  const from = to - 60_000
  const points = [
    { t: from - 1000, v: 99 }, // before the window: left out
    { t: from + 1000, v: 0.5 }, { t: from + 2000, v: 1 }, { t: from + 3000, v: 1.5 },
    // 20 s without a sample
    { t: from + 23_000, v: 1 }, { t: from + 24_000, v: 2 },
    { t: from + 50_000, v: 0 } // alone
  ]
  const model = guarded((p) => p.timeModel(points, from, to, 'm/s'))
  t.equal(model.lines.length, 2, 'two runs: the gap is not bridged')
  t.same(model.dots.map((d) => d.kind), ['point', 'end'], 'a lone sample is a dot; the newest is marked')
  t.same(model.yTicks.map((y) => y.label), ['0.0', '0.5', '1.0', '1.5', '2.0'], 'the y axis: the samples in the window, 99 left out')
  t.same(model.xTicks.map((x) => x.label), ['14:04:00', '14:04:15', '14:04:30', '14:04:45', '14:05:00'], 'every 15 s over a minute')
  t.equal(model.yTitle, 'm/s')
  t.equal(model.xTitle, 'time (UTC)')
  t.equal(model.xTicks[0]?.at, model.plot.left, 'the window\'s start at the left edge')
  t.equal(model.xTicks[4]?.at, model.plot.right, 'now at the right edge')
  checkModel(t, model, 'inside the plot')
  const empty = guarded((p) => p.timeModel([], from, to, 'm/s'))
  t.equal(empty.empty, true)
  t.ok(empty.xTicks.length > 0, 'an empty plot still has its time axis')
})

t.test('the path: equal scales, from a start dot to an end dot, both axes in metres', async (t) => {
  const model = guarded((p) => p.pathModel([{ x: 0, y: 0 }, { x: 10, y: 0 }, { x: 10, y: 5 }], 'm'))
  const [a, b, c] = (model.lines[0] ?? '').split(' ').map((pair) => pair.split(',').map(Number))
  const across = ((b?.[0] ?? 0) - (a?.[0] ?? 0)) / 10
  const up = ((b?.[1] ?? 0) - (c?.[1] ?? 0)) / 5
  t.ok(across > 0 && Math.abs(across - up) < 0.05, `a metre is as long across (${across} px) as up (${up} px)`)
  t.same(model.dots.map((d) => d.kind), ['start', 'end'])
  t.equal(model.xTitle, 'x (m)')
  t.equal(model.yTitle, 'y (m)')
  t.ok(model.xTicks.length >= 2 && model.yTicks.length >= 2, 'ticks on both axes')
  checkModel(t, model, 'inside the plot')
  const still = guarded((p) => p.pathModel([{ x: 3.5, y: 4 }, { x: 3.5, y: 4 }], 'm'))
  const labels = [...still.xTicks, ...still.yTicks].map((x) => x.label)
  t.notOk(labels.some((l) => l.includes('e')), `a robot standing still: plain labels (${labels.join(', ')})`)
  const ys = still.yTicks.map((x) => Number(x.label))
  t.ok(Math.max(...ys) - Math.min(...ys) >= 1, 'at least a metre up')
})

t.test('no value a robot can send breaks a plot', async (t) => {
  const to = Date.parse('2026-12-07T14:05:00Z')
  const from = to - 300_000
  let seed = 11
  const random = (): number => { seed = (seed * 16807) % 2147483647; return seed / 2147483647 }
  const pick = (): number => EXTREMES[Math.floor(random() * EXTREMES.length)] as number
  const cases: Array<{ name: string, values: number[] }> = EXTREMES.map((v) => ({ name: `all ${v}`, values: [v, v, v] }))
  for (const a of EXTREMES) for (const b of EXTREMES) cases.push({ name: `${a} then ${b}`, values: [a, b] })
  for (let i = 0; i < 100; i++) cases.push({ name: `random ${i}`, values: Array.from({ length: 1 + Math.floor(random() * 20) }, pick) })
  cases.push({ name: 'not numbers', values: [NaN, Infinity, -Infinity, '3' as unknown as number, null as unknown as number] })
  for (const c of cases) {
    const speed = guarded((p) => p.timeModel(c.values.map((v, i) => ({ t: from + i * 1000, v })), from, to, 'm/s'))
    checkModel(t, speed, `speed: ${c.name}`)
    const path = guarded((p) => p.pathModel(c.values.map((v, i) => ({ x: v, y: c.values[(i + 1) % c.values.length] })), 'm'))
    checkModel(t, path, `path: ${c.name}`)
  }
  const odd = guarded((p) => p.timeModel([{ t: from, v: 1 }], NaN, Infinity, 'm/s'))
  t.same(odd.xTicks, [], 'a window that is not one has no time ticks')
})
