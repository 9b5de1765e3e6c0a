// The robot page's history charts (issue 26): stored history, bucketed in the
// database by the aggregate query of docs/protocol.md §6.4, drawn on the server as
// SVG, so they read without JavaScript and without the live panel. Pure
// functions: buckets in, a chart model out (coordinates, ticks, labels); the
// template (views/partials/chart.eta) only writes it out, escaped.
import type { AggregateBucket } from '../src/services/frames.js'

/** The ranges a staff user can pick, with the bucket that gives each about 150 points. */
export const HISTORY_RANGES = {
  hour: { label: 'Last hour', seconds: 3600, bucket: 30 },
  day: { label: 'Last day', seconds: 86_400, bucket: 600 },
  week: { label: 'Last week', seconds: 604_800, bucket: 3600 }
} as const
export type HistoryRange = keyof typeof HISTORY_RANGES

export function historyRange (value: unknown): HistoryRange {
  return typeof value === 'string' && Object.hasOwn(HISTORY_RANGES, value) ? value as HistoryRange : 'hour'
}

/** The drawing area inside the SVG's viewBox; the margins hold the axes' labels. */
export const WIDTH = 480
export const HEIGHT = 220
const LEFT = 52
const RIGHT = 16
// the y axis' title sits above the plot, clear of the tick labels however long they are
const TOP = 22
const BOTTOM = 30

export interface Tick { at: number, label: string }

export interface ChartModel {
  id: string
  title: string
  /** the y axis' unit, as shown ("m/s", "%") */
  unit: string
  /** "x axis unit" for the path (metres), else "UTC" */
  xUnit: string
  /** the axes' titles, as shown: "m/s" and "time (UTC)", or "y (m)" and "x (m)" for the path */
  yTitle: string
  xTitle: string
  width: number
  height: number
  plot: { left: number, right: number, top: number, bottom: number }
  xTicks: Tick[]
  yTicks: Tick[]
  /** SVG path data of the line (M/L), one sub-path per run of adjacent buckets */
  line: string
  /** SVG path data of the min–max band, one closed polygon per run */
  band: string
  /** single points (a run of one bucket) and, for the path, its start and end */
  dots: Array<{ x: number, y: number, kind: 'point' | 'start' | 'end' }>
  /** what the screen reader hears, and what the page shows when there is no data */
  summary: string
  empty: boolean
}

const round1 = (v: number): number => Math.round(v * 10) / 10

// Bounds that hold whatever a robot sends. A frame's numbers are any finite
// doubles (±Number.MAX_VALUE, 5e-324, a glitching sensor's 1.37e12), and the
// charts are drawn while the broker and the REST API share the process: a
// loop whose end depends on those values can stop the whole fleet. So no loop
// here steps a value until it reaches another: ticks are (k + i) × step for a
// counted i, capped at MAX_TICKS, and every number written out is finite.

/** Ticks on one axis, at most, whatever the data: niceTicks gives `count + 2` (12) at most. */
export const MAX_TICKS = 16
/**
 * A span narrower than this share of the values' magnitude is the float's
 * noise, not a signal (a double holds ~16 digits; 1e10 and
 * 10000000000.000002 differ in the last one): the axis is padded instead.
 */
const PRECISION = 1e-9
/** The narrowest axis: its steps stay normal doubles (10 ** -301), far from underflow to 0. */
const MIN_SPAN = 1e-300
const MAX = Number.MAX_VALUE

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v))
/** The middle of two finite doubles, without overflowing (±MAX_VALUE's sum is ±Infinity). */
const middle = (a: number, b: number): number => a / 2 + b / 2

/**
 * Where `v` falls from `lo` (0) to `hi` (1), for any finite doubles: halves
 * first, so that MAX_VALUE − (−MAX_VALUE) cannot overflow. A degenerate
 * range puts everything in the middle.
 */
function share (v: number, lo: number, hi: number): number {
  const half = hi / 2 - lo / 2
  const r = half > 0 ? (v / 2 - lo / 2) / half : 0.5
  return Number.isFinite(r) ? r : 0.5
}

/** A pixel kept inside [lo, hi] (the middle if it is not a number at all), to 0.1 px. */
const inside = (p: number, lo: number, hi: number): number => round1(Number.isNaN(p) ? (lo + hi) / 2 : clamp(p, lo, hi))
/** A pixel between `from` and `to` at `r` of the way. */
const pixel = (from: number, to: number, r: number): number => inside(from + r * (to - from), Math.min(from, to), Math.max(from, to))

/** `m × 10^e` with `digits` significant digits, trailing zeros and the `+` dropped: 1.5e10, 2e-300. */
function scientific (value: number, digits: number): string {
  const [mantissa = '', exponent = ''] = value.toExponential(clamp(digits, 1, 21) - 1).split('e')
  const m = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa
  return `${m}e${exponent.replace('+', '')}`
}

/**
 * The labels of one axis, all in the same notation: fixed with as few
 * decimals as the step needs (at most 3), or, when the values reach a
 * million or the step is below a thousandth, `m e k` with as many significant
 * digits as tell one tick from the next (at most 12). Either way a label is
 * at most ~20 characters, never a 309-digit integer or "1e-7" as "0.000".
 */
function labeller (step: number, largest: number): (value: number) => string {
  const log = (v: number): number => Math.floor(Math.log10(v) + 1e-9)
  if (largest < 1e6 && step >= 1e-3) {
    const decimals = clamp(-log(step), 0, 3)
    return (value) => {
      const fixed = value.toFixed(decimals)
      return /^-0(\.0*)?$/.test(fixed) ? fixed.slice(1) : fixed
    }
  }
  const digits = clamp(log(largest) - log(step) + 1, 1, 12)
  return (value) => value === 0 ? '0' : scientific(value, digits)
}

/** A value in a sentence: three significant digits, no trailing zeros; 1.37e12 and 2e-7 rather than long strings of zeros. */
function plain (v: number): string {
  const a = Math.abs(v)
  return a !== 0 && (a >= 1e6 || a < 1e-3) ? scientific(v, 3) : String(Number(v.toPrecision(3)))
}

/** The lowest and highest of finite values (a loop: spreading 10,000 values into Math.min can overflow the stack). */
function extent (values: number[]): [number, number] {
  let lo = Infinity
  let hi = -Infinity
  for (const v of values) {
    if (v < lo) lo = v
    if (v > hi) hi = v
  }
  return [lo, hi]
}

/**
 * "Nice" ticks over [lo, hi]: steps of 1, 2 or 5 × 10^k, about `count` of
 * them (2 to 10), at most `count + 2`. Any two doubles are accepted: ±Infinity
 * becomes ±MAX_VALUE, NaN the other end (or 0–1); a span below the values'
 * precision, or below MIN_SPAN, is padded around its middle (by a tenth of
 * the magnitude, or 1 around 0), so the step is always well above the
 * values' last digit. Each tick is (k + i) × step for a counted i, never
 * a running sum: at 1e10 with a step of 1e-6, `v += step` left `v` where it
 * was and the loop grew its array until V8 aborted (issue 32). `lo`/`hi`
 * are the axis' ends: the ticks' ends, or the data's own where a tick would
 * pass ±MAX_VALUE.
 */
export function niceTicks (lo: number, hi: number, count = 5): { lo: number, hi: number, step: number, ticks: number[] } {
  const n = Number.isFinite(count) ? clamp(Math.round(count), 2, 10) : 5
  lo = clamp(lo, -MAX, MAX)
  hi = clamp(hi, -MAX, MAX)
  if (Number.isNaN(lo) && Number.isNaN(hi)) { lo = 0; hi = 1 } else if (Number.isNaN(lo)) lo = hi; else if (Number.isNaN(hi)) hi = lo
  if (lo > hi) [lo, hi] = [hi, lo]
  const magnitude = Math.max(Math.abs(lo), Math.abs(hi))
  const half = hi / 2 - lo / 2
  if (!(half >= MIN_SPAN / 2 && half >= magnitude * PRECISION / 2)) {
    const centre = middle(lo, hi)
    const pad = magnitude === 0 ? 1 : Math.max(magnitude / 10, MIN_SPAN)
    lo = Math.max(-MAX, centre - pad)
    hi = Math.min(MAX, centre + pad)
  }
  const span = hi - lo
  const raw = Number.isFinite(span) ? span / n : (hi / 2 - lo / 2) / n * 2
  const power = 10 ** Math.floor(Math.log10(raw))
  // Past 1e308 no nice step is a finite double: 1e308 itself gives at most 5 ticks over ±MAX_VALUE.
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw && Number.isFinite(s)) ?? 1e308
  const first = Math.floor(lo / step)
  const last = Math.ceil(hi / step)
  const ticks: number[] = []
  for (let i = 0; i <= last - first && i < MAX_TICKS; i++) {
    const v = (first + i) * step
    if (Number.isFinite(v)) ticks.push(v)
  }
  return { lo: Math.max(-MAX, Math.min(lo, first * step)), hi: Math.min(MAX, Math.max(hi, last * step)), step, ticks }
}

const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000
const TIME_STEPS = [5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY]
/** The times a Date can hold (±100,000,000 days around 1970). */
const MAX_TIME = 8.64e15

/** Time ticks (UTC) over [from, to]: 8 or 9 at most, on round times; "HH:MM", or "MM-DD" for whole days. */
export function timeTicks (from: number, to: number): Tick[] {
  if (!(Number.isFinite(from) && Number.isFinite(to) && from <= to)) return []
  from = clamp(from, -MAX_TIME, MAX_TIME)
  to = clamp(to, -MAX_TIME, MAX_TIME)
  const span = to - from
  const step = TIME_STEPS.find((s) => span / s <= 8) ?? DAY * Math.ceil(span / DAY / 8)
  const first = Math.ceil(from / step)
  const ticks: Tick[] = []
  const two = (n: number): string => String(n).padStart(2, '0')
  for (let i = 0; i <= 8 && (first + i) * step <= to; i++) {
    const at = (first + i) * step
    const d = new Date(at)
    // from the fields, not the ISO string, whose years past 9999 are longer (+275760-09-13T…)
    ticks.push({ at, label: step >= DAY ? `${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}` : `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}` })
  }
  return ticks
}

interface Point { t: number, v: number, lo: number, hi: number }

/** Runs of adjacent buckets: a bucket without frames breaks the line instead of bridging the gap. */
function runs<T extends { t: number }> (points: T[], bucketMs: number): T[][] {
  const out: T[][] = []
  let current: T[] = []
  for (const p of points) {
    const prev = current[current.length - 1]
    if (prev !== undefined && p.t - prev.t > bucketMs) { out.push(current); current = [] }
    current.push(p)
  }
  if (current.length > 0) out.push(current)
  return out
}

function frame (id: string, title: string, unit: string, xUnit: string, titles: { y: string, x: string }): Omit<ChartModel, 'xTicks' | 'yTicks' | 'line' | 'band' | 'dots' | 'summary' | 'empty'> {
  return { id, title, unit, xUnit, yTitle: titles.y, xTitle: titles.x, width: WIDTH, height: HEIGHT, plot: { left: LEFT, right: WIDTH - RIGHT, top: TOP, bottom: HEIGHT - BOTTOM } }
}

/**
 * A field over time: the bucket averages as a line, their min–max as a band,
 * on a time axis from `from` to `to`. `fixed` pins the y axis (0–100 for
 * percentages) so that two robots' charts compare at a glance; a value beyond
 * a fixed axis is drawn at its edge. A bucket whose average is not a finite
 * number (an aggregate that overflowed) is left out like a bucket without
 * frames.
 */
export function timeChart (opts: { id: string, title: string, unit: string, field: string, buckets: AggregateBucket[], from: Date, to: Date, bucket: number, fixed?: [number, number] }): ChartModel {
  const base = frame(opts.id, opts.title, opts.unit, 'UTC', { y: opts.unit, x: 'time (UTC)' })
  const { left, right, top, bottom } = base.plot
  const from = opts.from.getTime()
  const to = opts.to.getTime()
  const points: Point[] = []
  for (const b of opts.buckets) {
    const v = b.avg[opts.field]
    const t = Date.parse(b.start)
    if (v === undefined || !Number.isFinite(v) || !Number.isFinite(t)) continue
    const lo = b.min[opts.field] ?? v
    const hi = b.max[opts.field] ?? v
    points.push({ t, v, lo: Number.isFinite(lo) ? lo : v, hi: Number.isFinite(hi) ? hi : v })
  }
  const [low] = extent(points.map((p) => p.lo))
  const [, high] = extent(points.map((p) => p.hi))
  // an empty chart without a fixed axis gets 0–1, not the ±MAX_VALUE that no values' extent gives
  const y = opts.fixed !== undefined ? niceTicks(opts.fixed[0], opts.fixed[1], 4) : points.length === 0 ? niceTicks(0, 1, 4) : niceTicks(low, high, 4)
  // each bucket is drawn at its middle
  const half = opts.bucket * 500
  const sx = (t: number): number => pixel(left, right, share(clamp(t + half, from, to), from, to))
  const sy = (v: number): number => pixel(bottom, top, share(v, y.lo, y.hi))
  let line = ''
  let band = ''
  const dots: ChartModel['dots'] = []
  for (const run of runs(points, opts.bucket * 1000)) {
    if (run.length === 1) {
      const p = run[0] as Point
      dots.push({ x: sx(p.t), y: sy(p.v), kind: 'point' })
      continue
    }
    line += run.map((p, i) => `${i === 0 ? 'M' : 'L'}${sx(p.t)},${sy(p.v)}`).join('')
    band += run.map((p, i) => `${i === 0 ? 'M' : 'L'}${sx(p.t)},${sy(p.hi)}`).join('') +
      [...run].reverse().map((p) => `L${sx(p.t)},${sy(p.lo)}`).join('') + 'Z'
  }
  const [vMin, vMax] = extent(points.map((p) => p.v))
  const label = labeller(y.step, Math.max(Math.abs(y.lo), Math.abs(y.hi)))
  const summary = points.length === 0
    ? `no ${opts.field} in this range`
    : `${opts.title}: ${points.length} buckets of ${opts.bucket} s, average from ${plain(vMin)} to ${plain(vMax)} ${opts.unit}`
  return {
    ...base,
    xTicks: timeTicks(from, to).map((tick) => ({ at: sx(tick.at - half), label: tick.label })),
    yTicks: y.ticks.map((v) => ({ at: sy(v), label: label(v) })),
    line,
    band,
    dots,
    summary,
    empty: points.length === 0
  }
}

/**
 * The path: each bucket's average position_x against its average position_y,
 * on equal scales (a metre is as long across as up), from a hollow start dot
 * to a filled end dot. Any finite positions fit: the spans are taken in
 * halves (±MAX_VALUE's would overflow), a robot that stood still or moved
 * less than a metre is drawn on at least a metre (MIN_PATH_SPAN: its ticks are
 * tenths, not 3.4999e0), one at 1.37e12 m on a padded axis (niceTicks).
 */
/** The least the path shows, in metres, up its shorter side. */
export const MIN_PATH_SPAN = 1

export function pathChart (opts: { id: string, buckets: AggregateBucket[], bucket: number }): ChartModel {
  const base = frame(opts.id, 'Path', 'm', 'm', { y: 'y (m)', x: 'x (m)' })
  const { left, right, top, bottom } = base.plot
  const points = opts.buckets
    .map((b) => ({ t: Date.parse(b.start), x: b.avg.position_x, y: b.avg.position_y }))
    .filter((p): p is { t: number, x: number, y: number } => Number.isFinite(p.t) && Number.isFinite(p.x) && Number.isFinite(p.y))
  // One metre per pixel the same way on both axes: the narrower span is widened around its middle.
  const w = right - left
  const h = bottom - top
  let [x0, x1] = extent(points.map((p) => p.x))
  let [y0, y1] = extent(points.map((p) => p.y))
  if (points.length === 0) { x0 = 0; x1 = 1; y0 = 0; y1 = 1 }
  const perPixel = Math.max(x1 / w - x0 / w, y1 / h - y0 / h, MIN_PATH_SPAN / h)
  const xt = niceTicks(middle(x0, x1) - perPixel * w / 2, middle(x0, x1) + perPixel * w / 2, 6)
  const yt = niceTicks(middle(y0, y1) - perPixel * h / 2, middle(y0, y1) + perPixel * h / 2, 4)
  // The nice ticks widen the ranges: take the wider metres-per-pixel again, so
  // that both stay equal, and tick what each axis then shows (the narrower
  // axis' first ticks would crowd its middle).
  const scale = Math.max(xt.hi / w - xt.lo / w, yt.hi / h - yt.lo / h)
  const mx = middle(xt.lo, xt.hi)
  const my = middle(yt.lo, yt.hi)
  const xs = niceTicks(mx - scale * w / 2, mx + scale * w / 2, 6)
  const ys = niceTicks(my - scale * h / 2, my + scale * h / 2, 4)
  // from the middle, in halves: (v − mx) / scale overflows for v and mx at opposite ends of the doubles
  const rx = (v: number): number => left + w / 2 + (v / 2 - mx / 2) / (scale / 2)
  const ry = (v: number): number => top + h / 2 - (v / 2 - my / 2) / (scale / 2)
  const sx = (v: number): number => inside(rx(v), left, right)
  const sy = (v: number): number => inside(ry(v), top, bottom)
  const inX = (v: number): boolean => rx(v) >= left - 0.05 && rx(v) <= right + 0.05
  const inY = (v: number): boolean => ry(v) >= top - 0.05 && ry(v) <= bottom + 0.05
  let line = ''
  for (const run of runs(points, opts.bucket * 1000)) {
    if (run.length > 1) line += run.map((p, i) => `${i === 0 ? 'M' : 'L'}${sx(p.x)},${sy(p.y)}`).join('')
  }
  const dots: ChartModel['dots'] = []
  const first = points[0]
  const last = points[points.length - 1]
  if (first !== undefined && last !== undefined) {
    dots.push({ x: sx(first.x), y: sy(first.y), kind: 'start' })
    dots.push({ x: sx(last.x), y: sy(last.y), kind: 'end' })
  }
  const xLabel = labeller(xs.step, Math.max(Math.abs(xs.lo), Math.abs(xs.hi)))
  const yLabel = labeller(ys.step, Math.max(Math.abs(ys.lo), Math.abs(ys.hi)))
  return {
    ...base,
    xTicks: xs.ticks.filter(inX).map((v) => ({ at: sx(v), label: xLabel(v) })),
    yTicks: ys.ticks.filter(inY).map((v) => ({ at: sy(v), label: yLabel(v) })),
    line,
    band: '',
    dots,
    summary: points.length === 0
      ? 'no position in this range'
      : `Path: ${points.length} average positions, x from ${plain(x0)} to ${plain(x1)} m, y from ${plain(y0)} to ${plain(y1)} m`,
    empty: points.length === 0
  }
}
