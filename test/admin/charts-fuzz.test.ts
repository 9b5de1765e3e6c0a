// The history charts against any number a robot can send (issue 32): a robot
// sent speeds of 1e10 and 10000000000.000002, and drawing its page looped in
// niceTicks() (`v += step` with a step below the value's last digit) until V8
// aborted and took the broker and the API with it. Here every chart kind is
// drawn over magnitudes from 1e-300 to 1e308 of both signs, equal values,
// single points, neighbours that differ in the last bit, ±MAX_VALUE,
// ±MIN_VALUE, 0 and -0, tiny and huge mixed, and seeded random values. Each
// draw runs in a worker thread (charts-render.ts): a draw that does not end
// within a few seconds fails its test and names its case, instead of hanging
// the run. Then each result is checked: a bounded number of ticks, every
// number in the SVG finite and short, labels short and distinct.
import { fork } from 'node:child_process'
import t, { type Test } from 'tap'
import { HEIGHT, MAX_TICKS, WIDTH, type ChartModel } from '../../admin/charts.js'
import type { AggregateBucket } from '../../src/services/frames.js'
import type { ChartCase, ChartResult, FromChild, ToChild } from './charts-render.js'

const CHARTS = new URL('../../admin/charts.ts', import.meta.url).href
/** How long one draw may take: a chart is drawn in well under a millisecond. */
const CASE_MS = 5000
/** How long the child may take to start (it compiles TypeScript on a busy machine). */
const START_MS = 60_000

interface Outcome { results: ChartResult[], failure?: string }

/** Draws `cases` in a child process; stops at the first case that takes more than `caseMs` or kills the child. */
async function drawAll (cases: ChartCase[], caseMs = CASE_MS): Promise<Outcome> {
  const results: ChartResult[] = []
  const child = fork(new URL('./charts-render.ts', import.meta.url), {
    // tap's TypeScript loader; a small heap, so that a loop that grows an array dies in seconds
    execArgv: [...process.execArgv, '--max-old-space-size=128'],
    // -0, NaN, ±Infinity and Dates cross as they are (JSON would make -0 a 0 and NaN a null)
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'pipe', 'ipc']
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { if (stderr.length < 2000) stderr += chunk.toString() })
  let current = -1
  return await new Promise<Outcome>((resolve) => {
    let timer: NodeJS.Timeout | undefined
    let finished = false
    const finish = (failure?: string): void => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      child.kill('SIGKILL')
      resolve(failure === undefined ? { results } : { results, failure })
    }
    const named = (): string => current < 0 ? 'starting the child' : `case "${cases[current]?.name ?? current}"`
    const arm = (ms: number): void => {
      clearTimeout(timer)
      timer = setTimeout(() => { finish(`${named()} did not finish within ${ms} ms: a loop`) }, ms)
    }
    arm(START_MS)
    child.on('message', (m: FromChild) => {
      if ('ready' in m) child.send({ module: CHARTS, cases } satisfies ToChild)
      else if ('started' in m) { current = m.started; arm(caseMs) } else {
        results.push(m.result)
        if (results.length === cases.length) finish()
      }
    })
    child.on('error', (err) => { finish(`${named()}: the child failed (${err.message})`) })
    child.on('exit', (code, signal) => { finish(`the child died (${signal ?? code}) during ${named()}: ${/FATAL ERROR[^\n]*|Error[^\n]*/.exec(stderr)?.[0] ?? stderr.slice(-200)}`) })
  })
}

// ---- values ----

const MAX = Number.MAX_VALUE
const MIN = Number.MIN_VALUE
const bits = new Float64Array(1)
const ints = new BigInt64Array(bits.buffer)
/** The next double after `v` towards +Infinity (for finite v < MAX_VALUE). */
function nextUp (v: number): number {
  if (v === 0) return MIN
  bits[0] = v
  ints[0] = (ints[0] as bigint) + (v > 0 ? 1n : -1n)
  return bits[0] as number
}
/** The next double before `v` towards -Infinity. */
const nextDown = (v: number): number => -nextUp(-v)

/** 1e-300 … 1e308, every `stride`th power of ten, both signs. */
function magnitudes (stride: number): number[] {
  const out: number[] = []
  for (let e = -300; e <= 308; e += stride) out.push(Number(`1e${e}`), Number(`-1e${e}`))
  out.push(1e308, -1e308)
  return out
}

/** The values that have broken or could break charts. */
const EXTREMES = [
  0, -0, MIN, -MIN, MAX, -MAX, nextDown(MAX), -nextDown(MAX), 2.2250738585072014e-308, 1e-300, -1e-300,
  1e-9, 0.1, 1, 5, 100, 1e10, 10000000000.000002, 1.37e12, -1.37e12, 1e308, -1e308
]

/** mulberry32: the same "random" values on every run, so a failure can be replayed. */
function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let r = Math.imul(a ^ (a >>> 15), 1 | a)
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296
  }
}

/** A random finite double: any sign, any magnitude from 1e-300 to 1e308, sometimes an extreme. */
function randomValue (random: () => number): number {
  if (random() < 0.1) return EXTREMES[Math.floor(random() * EXTREMES.length)] as number
  const v = (random() < 0.5 ? -1 : 1) * (1 + random() * 9) * 10 ** Math.floor(-300 + random() * 609)
  return Number.isFinite(v) ? v : MAX
}

// ---- charts ----

const FROM = Date.parse('2026-12-06T09:00:00Z')
const HOUR = 3_600_000
const BUCKET = 30

const speedBucket = (i: number, avg: number, min = avg, max = avg): AggregateBucket =>
  ({ start: new Date(FROM + i * BUCKET * 1000).toISOString(), count: 1, min: { speed: min }, max: { speed: max }, avg: { speed: avg } })
const positionBucket = (i: number, x: number, y: number): AggregateBucket =>
  ({ start: new Date(FROM + i * BUCKET * 1000).toISOString(), count: 1, min: {}, max: {}, avg: { position_x: x, position_y: y } })

const speedChart = (name: string, values: Array<number | [number, number, number]>, fixed?: [number, number]): ChartCase => ({
  name,
  kind: 'time',
  field: 'speed',
  from: FROM,
  to: FROM + HOUR,
  bucket: BUCKET,
  buckets: values.map((v, i) => typeof v === 'number' ? speedBucket(i, v) : speedBucket(i, ...v)),
  ...(fixed === undefined ? {} : { fixed })
})
const pathChart = (name: string, points: Array<[number, number]>): ChartCase =>
  ({ name, kind: 'path', bucket: BUCKET, buckets: points.map(([x, y], i) => positionBucket(i, x, y)) })

/** Every chart kind around one value: alone, twice, with its neighbour, against 0, against its opposite. */
function chartsAround (v: number): ChartCase[] {
  const up = Math.abs(v) === MAX ? nextDown(v) : nextUp(v)
  return [
    speedChart(`speed ${v} alone`, [v]),
    speedChart(`speed ${v} twice`, [v, v]),
    speedChart(`speed ${v} and its neighbour ${up}`, [v, up]),
    speedChart(`speed ${v}, band to its neighbour`, [[v, v, up], [up, v, up]]),
    speedChart(`speed ${v} and 0`, [v, 0, v]),
    speedChart(`speed ${v}, band from -|v| to |v|`, [[v, -Math.abs(v), Math.abs(v)], [v, v, v]]),
    speedChart(`battery ${v} on the fixed 0–100 axis`, [v, 50, v], [0, 100]),
    pathChart(`path (${v}, 0) alone`, [[v, 0]]),
    pathChart(`path (0, ${v}) alone`, [[0, v]]),
    pathChart(`path (${v}, ${v}) twice`, [[v, v], [v, v]]),
    pathChart(`path from (${v}, ${v}) to its neighbour`, [[v, v], [up, up]]),
    pathChart(`path from (${v}, ${-v}) to (${-v}, ${v})`, [[v, -v], [-v, v]])
  ]
}

/** Two values mixed on every chart kind. */
function chartsOf (a: number, b: number): ChartCase[] {
  return [
    speedChart(`speed ${a} then ${b}`, [a, b]),
    speedChart(`speed ${a}, band ${a} to ${b}`, [[a, Math.min(a, b), Math.max(a, b)], [b, b, b]]),
    pathChart(`path (${a}, ${b}) to (${b}, ${a})`, [[a, b], [b, a]])
  ]
}

function randomCharts (seed: number, count: number): ChartCase[] {
  const random = seeded(seed)
  const out: ChartCase[] = []
  for (let n = 0; n < count; n++) {
    const length = 1 + Math.floor(random() * 120)
    // half of the series sit around one value and wander by a random share of it, down to its last bits
    const base = randomValue(random)
    const wander = 10 ** (-17 + random() * 17)
    const value = (): number => random() < 0.5 ? randomValue(random) : base * (1 + (random() - 0.5) * wander)
    const values: Array<[number, number, number]> = []
    const points: Array<[number, number]> = []
    for (let i = 0; i < length; i++) {
      const [p, q, r] = [value(), value(), value()].sort((x, y) => x - y) as [number, number, number]
      values.push([q, p, r])
      points.push([value(), value()])
    }
    out.push(speedChart(`random speeds #${n} (seed ${seed})`, values))
    out.push(pathChart(`random path #${n} (seed ${seed})`, points))
  }
  return out
}

// ---- checks ----

const NUMBER = /-?\d[\d.]*(?:e[-+]?\d+)?/gi
/** The numbers of the SVG's geometry (coordinates, sizes, path data), as written. */
const pixelsIn = (svg: string): string[] => [...svg.matchAll(/ (?:viewBox|x|y|x1|x2|y1|y2|cx|cy|r|width|height|d)="([^"]*)"/g)].flatMap((m) => [...(m[1] as string).matchAll(NUMBER)].map((n) => n[0]))
/** The numbers in its text: tick labels, the summary (aria-label and the empty chart's text). */
const textNumbersIn = (svg: string): string[] => [...svg.replace(/ (?:viewBox|x|y|x1|x2|y1|y2|cx|cy|r|width|height|d)="[^"]*"/g, '').matchAll(NUMBER)].map((m) => m[0])

/** What is wrong with one drawn chart, if anything. */
function chartProblems (c: ChartCase, chart: ChartModel, svg: string): string[] {
  const problems: string[] = []
  const say = (what: string): void => { problems.push(`${c.name}: ${what}`) }
  for (const bad of ['NaN', 'Infinity', 'undefined', 'null']) if (svg.includes(bad)) say(`the SVG contains ${bad}`)
  for (const axis of ['xTicks', 'yTicks'] as const) {
    const ticks = chart[axis]
    if (ticks.length > MAX_TICKS) say(`${ticks.length} ${axis}, more than ${MAX_TICKS}`)
    for (const tick of ticks) {
      if (!(tick.at >= 0 && tick.at <= (axis === 'xTicks' ? WIDTH : HEIGHT))) say(`${axis} at ${tick.at}, outside the chart`)
      if (tick.label.length > 20) say(`${axis} label "${tick.label}" is long`)
    }
    const labels = ticks.map((tick) => tick.label)
    if (new Set(labels).size !== labels.length) say(`${axis} labels repeat: ${labels.join(' ')}`)
  }
  if (c.kind === 'time' && chart.yTicks.length < 2) say(`${chart.yTicks.length} y ticks`)
  if (c.kind === 'path' && (chart.xTicks.length < 1 || chart.yTicks.length < 1)) say(`${chart.xTicks.length} x and ${chart.yTicks.length} y ticks`)
  for (const d of chart.dots) if (!(d.x >= 0 && d.x <= WIDTH && d.y >= 0 && d.y <= HEIGHT)) say(`a dot at ${d.x},${d.y}`)
  for (const n of (chart.line + chart.band).split(/[MLZ,]/).filter((s) => s !== '').map(Number)) {
    if (!(n >= 0 && n <= WIDTH)) say(`a path point at ${n}`)
  }
  // pixels: inside the viewBox, to a tenth; labels and the summary's values: short (1.8e308 for MAX_VALUE is a fine label)
  for (const n of pixelsIn(svg)) if (!/^-?\d{1,3}(\.\d)?$/.test(n) || !(Number(n) >= 0 && Number(n) <= WIDTH)) say(`a pixel "${n}" in the SVG`)
  for (const n of textNumbersIn(svg)) if (n.length > 20) say(`"${n}" written in the SVG`)
  return problems
}

function ticksProblems (c: Extract<ChartCase, { kind: 'ticks' }>, r: Extract<ChartResult, { kind: 'ticks' }>['ticks']): string[] {
  const problems: string[] = []
  const say = (what: string): void => { problems.push(`${c.name}: ${what} (got ${JSON.stringify(r)})`) }
  const count = Math.min(10, Math.max(2, Math.round(c.count)))
  if (r.ticks.length < 2 || r.ticks.length > count + 3) say(`${r.ticks.length} ticks for about ${count}`)
  if (!(Number.isFinite(r.lo) && Number.isFinite(r.hi) && r.lo < r.hi)) say('not a finite range')
  if (!(Number.isFinite(r.step) && r.step > 0)) say('not a finite step')
  if (Math.min(c.lo, c.hi) < r.lo || Math.max(c.lo, c.hi) > r.hi) say('the range leaves the values out')
  r.ticks.forEach((v, i) => {
    if (!Number.isFinite(v) || v < r.lo || v > r.hi) say(`tick ${v} outside the range`)
    if (i > 0 && !(v > (r.ticks[i - 1] as number))) say('ticks not increasing')
  })
  // the axis is wider than the values' last digits: its step is not lost when added to them
  const largest = Math.max(Math.abs(r.lo), Math.abs(r.hi))
  if (largest + r.step === largest && largest - r.step === largest) say('a step below the values\' precision')
  return problems
}

function problemsOf (cases: ChartCase[], outcome: Outcome): string[] {
  const problems = outcome.failure === undefined ? [] : [outcome.failure]
  outcome.results.forEach((r, i) => {
    const c = cases[i] as ChartCase
    if (r.kind === 'chart') problems.push(...chartProblems(c, r.chart, r.svg))
    else if (r.kind === 'ticks' && c.kind === 'ticks') problems.push(...ticksProblems(c, r.ticks))
    else if (r.kind === 'timeTicks') {
      if (r.ticks.length > 9) problems.push(`${c.name}: ${r.ticks.length} time ticks`)
      for (const tick of r.ticks) if (!/^\d\d[:-]\d\d$/.test(tick.label)) problems.push(`${c.name}: time label ${tick.label}`)
    }
  })
  return problems
}

async function check (t: Test, cases: ChartCase[], what: string): Promise<void> {
  const outcome = await drawAll(cases)
  const problems = problemsOf(cases, outcome)
  t.equal(outcome.results.length, cases.length, `${what}: all ${cases.length} drawn`)
  t.same(problems.slice(0, 40), [], `${what}: ${problems.length} problems`)
}

// ---- the tests ----

t.test('the harness: a draw that never ends fails its test, naming the case, instead of hanging', async (t) => {
  const outcome = await drawAll([{ name: 'fine', kind: 'ticks', lo: 0, hi: 1, count: 4 }, { name: 'forever', kind: 'spin' }], 500)
  t.equal(outcome.results.length, 1, 'the case before it was drawn')
  t.equal(outcome.failure, 'case "forever" did not finish within 500 ms: a loop')
})

t.test('the report of issue 32: speeds 1e10 and 10000000000.000002, and a path at x = 1.37e12', async (t) => {
  const cases: ChartCase[] = [
    { name: 'ticks 1e10 … 10000000000.000002', kind: 'ticks', lo: 1e10, hi: 10000000000.000002, count: 4 },
    speedChart('speed 1e10 then 10000000000.000002', [1e10, 10000000000.000002]),
    speedChart('one bucket from 1e10 to 10000000000.000002', [[10000000000.000002, 1e10, 10000000000.000002]]),
    pathChart('path at x = 1.37e12', [[1.37e12, 20]])
  ]
  const outcome = await drawAll(cases)
  t.same(problemsOf(cases, outcome), [])
  const [ticks, speed, band, path] = outcome.results
  t.same(ticks?.kind === 'ticks' && ticks.ticks.ticks, [9e9, 9.5e9, 1e10, 1.05e10, 1.1e10], 'the axis is padded around 1e10 by a tenth')
  if (speed?.kind === 'chart') {
    t.same(speed.chart.yTicks.map((y) => y.label), ['9e9', '9.5e9', '1e10', '1.05e10', '1.1e10'], 'labels in exponent notation')
    t.match(speed.chart.summary, 'average from 1e10 to 1e10 m/s')
  }
  t.equal(band?.kind === 'chart' && band.chart.dots.length, 1, 'a lone bucket is a dot')
  if (path?.kind === 'chart') {
    t.ok(path.chart.xTicks.map((x) => x.label).includes('1.3e12'), `x labels: ${path.chart.xTicks.map((x) => x.label).join(' ')}`)
    t.match(path.chart.summary, 'x from 1.37e12 to 1.37e12 m')
  }
})

t.test('nice ticks over every magnitude, equal values, neighbours in the last bit and the extremes', async (t) => {
  const cases: ChartCase[] = []
  for (const v of magnitudes(1)) {
    for (const count of [4, 6]) {
      const up = Math.abs(v) === MAX ? nextDown(v) : nextUp(v)
      cases.push({ name: `ticks ${v} … ${v} (${count})`, kind: 'ticks', lo: v, hi: v, count })
      cases.push({ name: `ticks ${v} … ${up} (${count})`, kind: 'ticks', lo: v, hi: up, count })
      cases.push({ name: `ticks ${-Math.abs(v)} … ${Math.abs(v)} (${count})`, kind: 'ticks', lo: -Math.abs(v), hi: Math.abs(v), count })
      cases.push({ name: `ticks ${v} … ${v * (1 + 1e-12)} (${count})`, kind: 'ticks', lo: v, hi: v * (1 + 1e-12), count })
    }
  }
  for (const a of EXTREMES) {
    for (const b of EXTREMES) {
      for (const count of [1, 2, 4, 5, 6, 10, 1000]) cases.push({ name: `ticks ${a} … ${b} (${count})`, kind: 'ticks', lo: a, hi: b, count })
    }
  }
  const random = seeded(32)
  for (let i = 0; i < 5000; i++) {
    const [lo, hi] = [randomValue(random), randomValue(random)]
    cases.push({ name: `random ticks #${i} ${lo} … ${hi}`, kind: 'ticks', lo, hi, count: 2 + Math.floor(random() * 9) })
  }
  await check(t, cases, 'niceTicks')
})

t.test('nice ticks take what is not a finite number too: the axis is still finite', async (t) => {
  const outcome = await drawAll([
    { name: 'NaN … NaN', kind: 'ticks', lo: NaN, hi: NaN, count: 4 },
    { name: 'NaN … 5', kind: 'ticks', lo: NaN, hi: 5, count: 4 },
    { name: '-Infinity … Infinity', kind: 'ticks', lo: -Infinity, hi: Infinity, count: 4 },
    { name: 'Infinity … Infinity', kind: 'ticks', lo: Infinity, hi: Infinity, count: 4 },
    { name: '3 … 1 (reversed)', kind: 'ticks', lo: 3, hi: 1, count: 4 },
    { name: 'count NaN', kind: 'ticks', lo: 0, hi: 1, count: NaN }
  ])
  t.equal(outcome.failure, undefined)
  for (const r of outcome.results) {
    if (r.kind !== 'ticks') continue
    t.ok(Number.isFinite(r.ticks.lo) && Number.isFinite(r.ticks.hi) && r.ticks.lo < r.ticks.hi, `a finite axis: ${JSON.stringify(r.ticks)}`)
    t.ok(r.ticks.ticks.length >= 2 && r.ticks.ticks.length <= MAX_TICKS && r.ticks.ticks.every(Number.isFinite))
  }
})

t.test('time ticks over any span a Date can hold', async (t) => {
  const spans: Array<[number, number]> = [[FROM, FROM], [FROM, FROM + 1], [FROM, FROM + HOUR], [FROM, FROM + 7 * 86_400_000], [-8.64e15, 8.64e15], [0, 8.64e15], [8.64e15 - 1, 8.64e15], [-1e300, 1e300], [FROM + 1, FROM], [NaN, FROM], [FROM, Infinity]]
  await check(t, spans.map(([from, to]) => ({ name: `time ticks ${from} … ${to}`, kind: 'timeTicks', from, to })), 'timeTicks')
})

t.test('every chart kind around every magnitude from 1e-300 to 1e308, both signs, and the extremes', async (t) => {
  await check(t, [...magnitudes(3), ...EXTREMES].flatMap(chartsAround), 'around one value')
})

t.test('every chart kind over two values mixed: tiny with huge, MAX_VALUE with its neighbour, 0 with -0', async (t) => {
  await check(t, EXTREMES.flatMap((a) => EXTREMES.flatMap((b) => chartsOf(a, b))), 'two values')
})

t.test('seeded random series and paths, gaps between buckets included', async (t) => {
  const cases = randomCharts(2026, 300)
  // some buckets missing: the runs break, the lone buckets are dots
  for (const c of cases) if (c.kind !== 'spin' && 'buckets' in c) c.buckets = c.buckets.filter((_, i) => i % 7 !== 3)
  await check(t, cases, 'random')
})

t.test('a bucket whose aggregate is not a finite number is left out, like a bucket without frames', async (t) => {
  const cases: ChartCase[] = [
    speedChart('an average of NaN', [1, NaN, 2]),
    speedChart('an average of Infinity, min and max of ±Infinity', [[Infinity, -Infinity, Infinity], [1, -Infinity, Infinity], [2, 2, 2]]),
    pathChart('a position of Infinity', [[Infinity, 0], [1, 1], [2, -Infinity]])
  ]
  const outcome = await drawAll(cases)
  t.same(problemsOf(cases, outcome), [])
  const [nan, infinite, path] = outcome.results
  t.match(nan?.kind === 'chart' && nan.chart.summary, 'Speed: 2 buckets of 30 s, average from 1 to 2 m/s')
  t.match(infinite?.kind === 'chart' && infinite.chart.summary, 'Speed: 2 buckets of 30 s, average from 1 to 2 m/s')
  t.match(path?.kind === 'chart' && path.chart.summary, 'Path: 1 average positions')
})
