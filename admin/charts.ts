// The robot page's history charts (issue 26): stored history, bucketed in the
// database by the aggregate query of CONTRACT §11, drawn on the server as
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
const RIGHT = 12
const TOP = 12
const BOTTOM = 30

export interface Tick { at: number, label: string }

export interface ChartModel {
  id: string
  title: string
  /** the y axis' unit, as shown ("m/s", "%") */
  unit: string
  /** "x axis unit" for the path (metres), else "UTC" */
  xUnit: string
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

/** Numbers for tick labels: as few digits as the step needs. */
function numberLabel (value: number, step: number): string {
  const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)))
  const fixed = value.toFixed(digits)
  return fixed === '-0' || /^-0\.0*$/.test(fixed) ? fixed.slice(1) : fixed
}

/** A value in a sentence: three significant digits, no trailing zeros. */
const plain = (v: number): string => String(Number(v.toPrecision(3)))

/** "Nice" ticks over [lo, hi]: steps of 1, 2 or 5 × 10^k, about `count` of them. */
export function niceTicks (lo: number, hi: number, count = 5): { lo: number, hi: number, step: number, ticks: number[] } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1 }
  if (hi - lo < 1e-9) { const pad = Math.abs(lo) > 1e-9 ? Math.abs(lo) * 0.1 : 1; lo -= pad; hi += pad }
  const raw = (hi - lo) / count
  const power = 10 ** Math.floor(Math.log10(raw))
  const step = ([1, 2, 5, 10].find((m) => m * power >= raw) ?? 10) * power
  const first = Math.floor(lo / step) * step
  const last = Math.ceil(hi / step) * step
  const ticks: number[] = []
  for (let v = first; v <= last + step / 2; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v)
  return { lo: first, hi: last, step, ticks }
}

const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000
const TIME_STEPS = [5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY]

/** Time ticks (UTC) over [from, to]: at most 8, on round times; "HH:MM", or "MM-DD" for whole days. */
export function timeTicks (from: number, to: number): Tick[] {
  const span = to - from
  const step = TIME_STEPS.find((s) => span / s <= 8) ?? DAY * Math.ceil(span / DAY / 8)
  const ticks: Tick[] = []
  for (let at = Math.ceil(from / step) * step; at <= to; at += step) {
    const iso = new Date(at).toISOString()
    ticks.push({ at, label: step >= DAY ? iso.slice(5, 10) : iso.slice(11, 16) })
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

function frame (id: string, title: string, unit: string, xUnit: string): Omit<ChartModel, 'xTicks' | 'yTicks' | 'line' | 'band' | 'dots' | 'summary' | 'empty'> {
  return { id, title, unit, xUnit, width: WIDTH, height: HEIGHT, plot: { left: LEFT, right: WIDTH - RIGHT, top: TOP, bottom: HEIGHT - BOTTOM } }
}

/**
 * A field over time: the bucket averages as a line, their min–max as a band,
 * on a time axis from `from` to `to`. `fixed` pins the y axis (0–100 for
 * percentages) so that two robots' charts compare at a glance.
 */
export function timeChart (opts: { id: string, title: string, unit: string, field: string, buckets: AggregateBucket[], from: Date, to: Date, bucket: number, fixed?: [number, number] }): ChartModel {
  const base = frame(opts.id, opts.title, opts.unit, 'UTC')
  const { left, right, top, bottom } = base.plot
  const from = opts.from.getTime()
  const to = opts.to.getTime()
  const points: Point[] = []
  for (const b of opts.buckets) {
    const v = b.avg[opts.field]
    if (v === undefined) continue
    points.push({ t: Date.parse(b.start), v, lo: b.min[opts.field] ?? v, hi: b.max[opts.field] ?? v })
  }
  const lows = points.map((p) => p.lo)
  const highs = points.map((p) => p.hi)
  const y = opts.fixed !== undefined
    ? { ...niceTicks(opts.fixed[0], opts.fixed[1], 4) }
    : niceTicks(Math.min(...lows, Infinity), Math.max(...highs, -Infinity), 4)
  // each bucket is drawn at its middle
  const half = opts.bucket * 500
  const sx = (t: number): number => round1(left + (Math.min(Math.max(t + half, from), to) - from) / Math.max(1, to - from) * (right - left))
  const sy = (v: number): number => round1(bottom - (v - y.lo) / (y.hi - y.lo) * (bottom - top))
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
  const values = points.map((p) => p.v)
  const summary = points.length === 0
    ? `no ${opts.field} in this range`
    : `${opts.title}: ${points.length} buckets of ${opts.bucket} s, average from ${plain(Math.min(...values))} to ${plain(Math.max(...values))} ${opts.unit}`
  return {
    ...base,
    xTicks: timeTicks(from, to).map((tick) => ({ at: sx(tick.at - half), label: tick.label })),
    yTicks: y.ticks.map((v) => ({ at: sy(v), label: numberLabel(v, y.step) })),
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
 * to a filled end dot.
 */
export function pathChart (opts: { id: string, buckets: AggregateBucket[], bucket: number }): ChartModel {
  const base = frame(opts.id, 'Path', 'm', 'm')
  const { left, right, top, bottom } = base.plot
  const points = opts.buckets
    .filter((b) => b.avg.position_x !== undefined && b.avg.position_y !== undefined)
    .map((b) => ({ t: Date.parse(b.start), x: b.avg.position_x as number, y: b.avg.position_y as number }))
  const xs = points.map((p) => p.x)
  const ys = points.map((p) => p.y)
  // One metre per pixel the same way on both axes: the narrower span is widened around its middle.
  const w = right - left
  const h = bottom - top
  let x0 = Math.min(...xs, Infinity); let x1 = Math.max(...xs, -Infinity)
  let y0 = Math.min(...ys, Infinity); let y1 = Math.max(...ys, -Infinity)
  if (points.length === 0) { x0 = 0; x1 = 1; y0 = 0; y1 = 1 }
  const perPixel = Math.max((x1 - x0) / w, (y1 - y0) / h, 1e-6)
  const cx = (x0 + x1) / 2; const cy = (y0 + y1) / 2
  const xt = niceTicks(cx - perPixel * w / 2, cx + perPixel * w / 2, 6)
  const yt = niceTicks(cy - perPixel * h / 2, cy + perPixel * h / 2, 4)
  // the nice ticks widen the ranges: take the wider metres-per-pixel again, so that both stay equal
  const scale = Math.max((xt.hi - xt.lo) / w, (yt.hi - yt.lo) / h)
  const mx = (xt.lo + xt.hi) / 2; const my = (yt.lo + yt.hi) / 2
  const sx = (v: number): number => round1(left + w / 2 + (v - mx) / scale)
  const sy = (v: number): number => round1(top + h / 2 - (v - my) / scale)
  const inX = (v: number): boolean => sx(v) >= left - 0.05 && sx(v) <= right + 0.05
  const inY = (v: number): boolean => sy(v) >= top - 0.05 && sy(v) <= bottom + 0.05
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
  return {
    ...base,
    xTicks: xt.ticks.filter(inX).map((v) => ({ at: sx(v), label: numberLabel(v, xt.step) })),
    yTicks: yt.ticks.filter(inY).map((v) => ({ at: sy(v), label: numberLabel(v, yt.step) })),
    line,
    band: '',
    dots,
    summary: points.length === 0
      ? 'no position in this range'
      : `Path: ${points.length} average positions, x from ${plain(x0)} to ${plain(x1)} m, y from ${plain(y0)} to ${plain(y1)} m`,
    empty: points.length === 0
  }
}
