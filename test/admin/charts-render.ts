// The child process of charts-fuzz.test.ts: it draws the cases it is sent,
// one after the other, with the chart functions of admin/charts.ts and the
// robot page's own template (views/partials/chart.eta), and sends each result
// back. It runs in a process of its own so that a chart that never ends (the
// loop of issue 32, which grew an array until V8 aborted and took the whole
// server down) is a timeout or a dead child that names the case in the test,
// not a test run that hangs or dies. (A worker thread is not enough: its
// resourceLimits did not stop that array from aborting the whole process.)
// A case is announced, and the announcement written, before it is drawn.
import { fileURLToPath } from 'node:url'
import { Eta } from 'eta'
import type { AggregateBucket } from '../../src/services/frames.js'
import type * as Charts from '../../admin/charts.js'

export type ChartCase =
  | { name: string, kind: 'ticks', lo: number, hi: number, count: number }
  | { name: string, kind: 'timeTicks', from: number, to: number }
  | { name: string, kind: 'time', buckets: AggregateBucket[], field: string, from: number, to: number, bucket: number, fixed?: [number, number] }
  | { name: string, kind: 'path', buckets: AggregateBucket[], bucket: number }
  /** the harness' own check: a case that never ends */
  | { name: string, kind: 'spin' }

export type ChartResult =
  | { kind: 'ticks', ticks: ReturnType<typeof Charts.niceTicks> }
  | { kind: 'timeTicks', ticks: Charts.Tick[] }
  | { kind: 'chart', chart: Charts.ChartModel, svg: string }

export interface ToChild { module: string, cases: ChartCase[] }

export type FromChild =
  | { ready: true }
  | { started: number }
  | { done: number, result: ChartResult }

const send = process.send?.bind(process)
if (send === undefined) throw new Error('charts-render.ts runs as a child process, with an IPC channel')
const job = new Promise<ToChild>((resolve) => { process.once('message', resolve) })
send({ ready: true } satisfies FromChild)
const { module, cases } = await job
const charts = await import(module) as typeof Charts
const eta = new Eta({ autoEscape: true, autoTrim: [false, 'nl'], views: fileURLToPath(new URL('../../admin/views', import.meta.url)) })

function draw (c: ChartCase): ChartResult {
  switch (c.kind) {
    case 'ticks': return { kind: 'ticks', ticks: charts.niceTicks(c.lo, c.hi, c.count) }
    case 'timeTicks': return { kind: 'timeTicks', ticks: charts.timeTicks(c.from, c.to) }
    case 'spin': for (;;) { /* never ends */ }
    default: {
      const chart = c.kind === 'time'
        ? charts.timeChart({ id: 'c', title: 'Speed', unit: 'm/s', field: c.field, buckets: c.buckets, from: new Date(c.from), to: new Date(c.to), bucket: c.bucket, ...(c.fixed === undefined ? {} : { fixed: c.fixed }) })
        : charts.pathChart({ id: 'p', buckets: c.buckets, bucket: c.bucket })
      return { kind: 'chart', chart, svg: eta.render('/partials/chart', { chart }) }
    }
  }
}

for (const [i, c] of cases.entries()) {
  // written before the draw begins: a draw that blocks the event loop would hold it back
  await new Promise((resolve) => send({ started: i } satisfies FromChild, undefined, {}, resolve))
  send({ done: i, result: draw(c) } satisfies FromChild)
}
process.disconnect()
