// The robot page's history charts (issue 26): stored frames bucketed by the
// aggregate query (docs/protocol.md §6.4) and drawn on the server as SVG, so they read
// without JavaScript. The chart model is checked against values computed
// here; the page against frames stored at known times.
import t from 'tap'
import { niceTicks, pathChart, timeChart, timeTicks } from '../../admin/charts.js'
import type { AggregateBucket } from '../../src/services/frames.js'
import { createRobot, robotIdOf } from '../factory.js'
import { staffSetup } from './browser.js'
import { section, unescape } from './html.js'

const bucketAt = (start: number, field: string, avg: number, min = avg, max = avg): AggregateBucket =>
  ({ start: new Date(start).toISOString(), count: 1, min: { [field]: min }, max: { [field]: max }, avg: { [field]: avg } })

/** The sub-paths of an SVG path's data, each as its [x, y] points. */
function subPaths (d: string): Array<Array<[number, number]>> {
  return d.split('M').filter((s) => s !== '').map((s) => s.replace(/Z$/, '').split('L').map((p) => p.split(',').map(Number) as [number, number]))
}

t.test('nice ticks are 1, 2 or 5 × 10^k and cover the range', async (t) => {
  t.same(niceTicks(0, 2.2, 4), { lo: 0, hi: 3, step: 1, ticks: [0, 1, 2, 3] })
  t.same(niceTicks(0, 1.8, 4), { lo: 0, hi: 2, step: 0.5, ticks: [0, 0.5, 1, 1.5, 2] })
  t.same(niceTicks(0, 100, 4).ticks, [0, 50, 100], 'percentages')
  t.same(niceTicks(-3, 7, 5).ticks, [-4, -2, 0, 2, 4, 6, 8])
  const flat = niceTicks(5, 5, 4)
  t.ok(flat.lo < 5 && flat.hi > 5, 'a flat series gets a range around its value')
  t.ok(niceTicks(0, 0, 4).step > 0, 'all zeros too')
})

t.test('time ticks fall on round UTC times, at most 8, labelled HH:MM or MM-DD', async (t) => {
  const to = Date.parse('2026-12-06T10:17:00Z')
  const hour = timeTicks(to - 3600_000, to)
  t.same(hour.map((x) => x.label), ['09:20', '09:30', '09:40', '09:50', '10:00', '10:10'])
  const day = timeTicks(to - 86_400_000, to)
  t.same(day.map((x) => x.label), ['12:00', '15:00', '18:00', '21:00', '00:00', '03:00', '06:00', '09:00'], 'a day: every 3 hours')
  const week = timeTicks(to - 7 * 86_400_000, to)
  t.same(week.map((x) => x.label), ['11-30', '12-01', '12-02', '12-03', '12-04', '12-05', '12-06'])
})

t.test('a time chart: the averages as a line, min–max as a band, broken where buckets are missing', async (t) => {
  const from = new Date('2026-12-06T09:00:00Z')
  const to = new Date('2026-12-06T10:00:00Z')
  const at = (minute: number): number => from.getTime() + minute * 60_000
  const buckets = [
    bucketAt(at(0), 'speed', 1, 0.5, 1.5), bucketAt(at(1), 'speed', 2, 1, 3), bucketAt(at(2), 'speed', 1.5),
    // minute 3 and 4 have no frames
    bucketAt(at(5), 'speed', 0.25), bucketAt(at(6), 'speed', 0.5),
    bucketAt(at(30), 'speed', 1) // alone
  ]
  const chart = timeChart({ id: 'c', title: 'Speed', unit: 'm/s', field: 'speed', buckets, from, to, bucket: 60 })
  const runs = subPaths(chart.line)
  t.same(runs.map((r) => r.length), [3, 2], 'two runs of adjacent buckets; the gap is not bridged')
  t.same(chart.dots.map((d) => d.kind), ['point'], 'a lone bucket is a dot')
  t.same(subPaths(chart.band).map((r) => r.length), [6, 4], 'a band per run: max forward, min back')
  // the y axis: 0 to 3 (the highest max), ticks at whole numbers
  t.same(chart.yTicks.map((y) => y.label), ['0', '1', '2', '3'])
  const y0 = chart.yTicks[0]?.at as number
  const y3 = chart.yTicks[3]?.at as number
  const yOf = (v: number): number => Math.round((y0 + (y3 - y0) * v / 3) * 10) / 10
  t.same(runs[0]?.map((p) => p[1]), [yOf(1), yOf(2), yOf(1.5)], 'each point sits at its average')
  // the x axis: each bucket at its middle, on a line from `from` to `to`
  const { left, right } = chart.plot
  const xOf = (ms: number): number => Math.round((left + (ms - from.getTime()) / 3600_000 * (right - left)) * 10) / 10
  t.same(runs[0]?.map((p) => p[0]), [xOf(at(0.5)), xOf(at(1.5)), xOf(at(2.5))])
  t.same(chart.xTicks.map((x) => x.label), ['09:00', '09:10', '09:20', '09:30', '09:40', '09:50', '10:00'])
  t.equal(chart.xTicks[0]?.at, left, 'the first tick at the left edge')
  t.equal(chart.xTicks[6]?.at, right, 'the last at the right edge')
  t.match(chart.summary, 'average from 0.25 to 2 m/s')
  t.equal(chart.empty, false)

  const fixed = timeChart({ id: 'b', title: 'Battery', unit: '%', field: 'battery', buckets: [bucketAt(at(1), 'battery', 40), bucketAt(at(2), 'battery', 41)], from, to, bucket: 60, fixed: [0, 100] })
  t.same(fixed.yTicks.map((y) => y.label), ['0', '50', '100'], 'a percentage keeps its 0–100 axis')
  const none = timeChart({ id: 'n', title: 'CPU', unit: '%', field: 'cpu', buckets: [bucketAt(at(1), 'battery', 40)], from, to, bucket: 60, fixed: [0, 100] })
  t.equal(none.empty, true)
  t.equal(none.line, '')
  t.equal(none.summary, 'no cpu in this range', 'buckets without the field draw nothing')
})

t.test('the path: average positions on equal scales, from a start dot to an end dot', async (t) => {
  const start = Date.parse('2026-12-06T09:00:00Z')
  const bucket = (i: number, x: number, y: number): AggregateBucket =>
    ({ start: new Date(start + i * 60_000).toISOString(), count: 1, min: {}, max: {}, avg: { position_x: x, position_y: y, speed: 1 } })
  const chart = pathChart({ id: 'p', buckets: [bucket(0, 0, 0), bucket(1, 10, 0), bucket(2, 10, 5)], bucket: 60 })
  const [run] = subPaths(chart.line)
  t.equal(run?.length, 3)
  const [a, b, c] = run as Array<[number, number]>
  const across = (b[0] - a[0]) / 10
  const up = (b[1] - c[1]) / 5
  t.ok(Math.abs(across - up) < 0.02, `a metre is as long across (${across} px) as up (${up} px)`)
  t.equal(a[1], b[1], 'y=0 twice: a horizontal segment')
  t.same(chart.dots.map((d) => [d.kind, d.x, d.y]), [['start', a[0], a[1]], ['end', c[0], c[1]]])
  t.ok(chart.xTicks.length >= 2 && chart.yTicks.length >= 2, 'both axes have ticks')
  for (const tick of chart.xTicks) t.ok(tick.at >= chart.plot.left - 0.1 && tick.at <= chart.plot.right + 0.1, `x tick ${tick.label} inside`)
  t.equal(pathChart({ id: 'e', buckets: [], bucket: 60 }).summary, 'no position in this range')
  const still = pathChart({ id: 's', buckets: [bucket(0, 3.5, 4), bucket(1, 3.5, 4)], bucket: 60 })
  const labels = [...still.xTicks, ...still.yTicks].map((x) => x.label)
  t.notOk(labels.some((l) => l.includes('e')), `a robot standing still: plain labels (${labels.join(', ')})`)
  const ys = still.yTicks.map((x) => Number(x.label))
  t.ok(Math.max(...ys) - Math.min(...ys) >= 1, 'at least a metre up')
})

t.test('the robot page charts stored history for the last hour, day or week, without JavaScript', async (t) => {
  const { app, browser } = await staffSetup(t)
  const robot = await createRobot(app)
  const robotId = await robotIdOf(app, robot.uuid)
  const now = Date.now()
  // every 30 s over the last 10 minutes (one frame per 30-second bucket): speeds 0.5 … 2, battery from 90 down; one position 3 days ago
  const frames = []
  for (let i = 0; i < 20; i++) {
    const receivedAt = new Date(now - (20 - i) * 30_000)
    frames.push({ frameId: `p${i}`, type: 1, data: { speed: 0.5 + i * 1.5 / 19, position_x: i, position_y: i % 5, angle_theta: 0, datetime: receivedAt.toISOString() }, recordedAt: receivedAt, receivedAt })
    frames.push({ frameId: `h${i}`, type: 3, data: { battery: 90 - i, cpu: 30, datetime: receivedAt.toISOString() }, recordedAt: receivedAt, receivedAt })
  }
  const old = new Date(now - 3 * 86_400_000)
  frames.push({ frameId: 'old', type: 1, data: { speed: 9, position_x: 100, position_y: 100, angle_theta: 0, datetime: old.toISOString() }, recordedAt: old, receivedAt: old })
  await app.services.frames.store(robotId, frames)

  const page = await browser.get(`/admin/robots/${robot.uuid}`)
  t.equal(page.statusCode, 200)
  const history = section(page.body, '<section id="history" class="card">', '</section>')
  t.match(history, 'aria-current="true">Last hour</a>', 'the last hour by default')
  t.match(history, 'in buckets of 30 s')
  for (const id of ['chart-speed', 'chart-path', 'chart-battery', 'chart-cpu']) t.match(history, `<figure class="chart" id="${id}">`, `${id} is drawn`)
  const speed = section(history, '<figure class="chart" id="chart-speed">', '</figure>')
  t.match(unescape(speed), 'Speed: 20 buckets of 30 s, average from 0.5 to 2 m/s', 'the last hour holds the 20 recent frames, not the old one')
  t.match(speed, '<text class="unit" x="4" y="12">m/s</text>', 'the y axis names its unit, above the plot')
  t.match(speed, '>time (UTC)</text>', 'the time axis says UTC')
  t.ok(Number(/<rect class="plot-bg" x="[\d.]+" y="([\d.]+)"/.exec(speed)?.[1]) >= 20, 'the plot starts below the unit')
  t.match(speed, /text-anchor="middle">\d\d:\d\d<\/text>/, 'time labels')
  t.match(speed, /<path class="chart-line" d="M[\d.,L]+"/, 'a line')
  const battery = section(history, '<figure class="chart" id="chart-battery">', '</figure>')
  t.match(unescape(battery), 'average from 71 to 90 %')
  t.match(battery, '>100</text>', 'battery on a 0–100 axis')
  const path = section(history, '<figure class="chart" id="chart-path">', '</figure>')
  t.match(unescape(path), 'x from 0 to 19 m')
  t.match(path, '<text class="unit" x="4" y="12">y (m)</text>', 'the path names both axes')
  t.match(path, '>x (m)</text>')
  t.match(path, 'class="chart-dot start"')
  t.match(path, 'class="chart-dot end"')
  t.notMatch(page.body, /<script>/, 'no inline script: the charts are plain SVG')

  const week = await browser.get(`/admin/robots/${robot.uuid}?range=week`)
  const weekHistory = section(week.body, '<section id="history" class="card">', '</section>')
  t.match(weekHistory, 'aria-current="true">Last week</a>')
  t.match(weekHistory, 'in buckets of 1 h')
  t.match(unescape(weekHistory), / to 9 m\/s/, 'the week holds the old frame too')
  t.match(weekHistory, /text-anchor="middle">\d\d-\d\d<\/text>/, 'days on the time axis')
  const day = await browser.get(`/admin/robots/${robot.uuid}?range=day`)
  t.match(day.body, 'in buckets of 10 min')
  t.notMatch(unescape(day.body), 'to 9 m/s', 'the day leaves the 3-day-old frame out')

  const odd = await browser.get(`/admin/robots/${robot.uuid}?range=%3Cscript%3E`)
  t.equal(odd.statusCode, 200, 'an unknown range is the last hour')
  t.match(odd.body, 'aria-current="true">Last hour</a>')
  t.notMatch(odd.body, '<script>')

  const empty = await createRobot(app)
  const none = await browser.get(`/admin/robots/${empty.uuid}`)
  t.match(none.body, 'no speed in this range', 'a robot without frames: each chart says so')
  t.match(none.body, 'no position in this range')
})
