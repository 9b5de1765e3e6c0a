// The benchmark's chart: throughput and p99 ack latency against the number of
// robots, United against the bare broker, as a self-contained SVG.

export interface ChartPoint { robots: number, frames_per_s: number, p99_ms: number }
export interface ChartSeries { label: string, color: string, points: ChartPoint[] }

const W = 1000
const H = 450
const PANEL_W = 400
const PANEL_H = 270
const TOP = 90

function esc (s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** A "nice" upper bound for an axis: 1, 2, 2.5 or 5 times a power of ten. */
function niceMax (x: number): number {
  if (!(x > 0)) return 1
  const p = 10 ** Math.floor(Math.log10(x))
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (x <= m * p) return m * p
  return 10 * p
}

function fmt (x: number): string {
  if (!Number.isFinite(x)) return '–'
  if (x >= 10_000) return `${Math.round(x / 1000)}k`
  if (x >= 1000) return `${(x / 1000).toFixed(1)}k`
  if (x >= 100) return String(Math.round(x))
  if (x >= 10) return x.toFixed(1)
  return x.toFixed(2)
}

/** An axis tick: no trailing zeros. */
function tick (x: number): string {
  if (x >= 1000) return `${Number((x / 1000).toFixed(1))}k`
  return String(Number(x.toPrecision(3)))
}

function panel (x0: number, title: string, unit: string, counts: number[], series: ChartSeries[], value: (p: ChartPoint) => number): string {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map(value).filter(Number.isFinite))) * 1.08)
  const PAD = 30
  const px = (i: number): number => x0 + (counts.length === 1 ? PANEL_W / 2 : PAD + (i * (PANEL_W - 2 * PAD)) / (counts.length - 1))
  const py = (v: number): number => TOP + PANEL_H - (v / max) * PANEL_H
  const out: string[] = []
  out.push(`<text x="${x0 + PANEL_W / 2}" y="${TOP - 14}" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`)
  for (let k = 0; k <= 5; k++) {
    const v = (max * k) / 5
    const y = py(v)
    out.push(`<line x1="${x0}" y1="${y}" x2="${x0 + PANEL_W}" y2="${y}" stroke="#ddd"/>`)
    out.push(`<text x="${x0 - 6}" y="${y + 4}" text-anchor="end" font-size="11" fill="#555">${tick(v)}</text>`)
  }
  out.push(`<text transform="translate(${x0 - 48},${TOP + PANEL_H / 2}) rotate(-90)" text-anchor="middle" font-size="12" fill="#333">${esc(unit)}</text>`)
  counts.forEach((c, i) => {
    out.push(`<line x1="${px(i)}" y1="${TOP + PANEL_H}" x2="${px(i)}" y2="${TOP + PANEL_H + 5}" stroke="#555"/>`)
    out.push(`<text x="${px(i)}" y="${TOP + PANEL_H + 19}" text-anchor="middle" font-size="11" fill="#555">${c}</text>`)
  })
  out.push(`<text x="${x0 + PANEL_W / 2}" y="${TOP + PANEL_H + 38}" text-anchor="middle" font-size="12" fill="#333">robots (TCP, closed loop)</text>`)
  out.push(`<line x1="${x0}" y1="${TOP + PANEL_H}" x2="${x0 + PANEL_W}" y2="${TOP + PANEL_H}" stroke="#555"/>`)
  const at = (s: ChartSeries, c: number): number | undefined => {
    const p = s.points.find((q) => q.robots === c)
    return p === undefined || !Number.isFinite(value(p)) ? undefined : value(p)
  }
  for (const s of series) {
    const pts = counts.map((c, i) => {
      const v = at(s, c)
      // the label goes above the point when it is the highest at this count, below otherwise
      const highest = v !== undefined && series.every((o) => o === s || (at(o, c) ?? -Infinity) <= v)
      return v === undefined ? null : { x: px(i), y: py(v), v, above: highest }
    }).filter((p): p is { x: number, y: number, v: number, above: boolean } => p !== null)
    if (pts.length === 0) continue
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="2.5" points="${pts.map((p) => `${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ')}"/>`)
    for (const p of pts) {
      out.push(`<circle cx="${p.x.toFixed(1)}" cy="${p.y.toFixed(1)}" r="4" fill="${s.color}"/>`)
      // a label below a point near the axis goes to its right instead
      const label = p.above ? { x: p.x, y: p.y - 9, anchor: 'middle' } : p.y + 17 > TOP + PANEL_H - 2 ? { x: p.x + 7, y: p.y - 5, anchor: 'start' } : { x: p.x, y: p.y + 17, anchor: 'middle' }
      out.push(`<text x="${label.x.toFixed(1)}" y="${label.y.toFixed(1)}" text-anchor="${label.anchor}" font-size="10.5" fill="${s.color}">${fmt(p.v)}</text>`)
    }
  }
  return out.join('\n')
}

export function renderChart (opts: { title: string, subtitle: string, counts: number[], series: ChartSeries[] }): string {
  const STEP = 240
  const left = W / 2 - (STEP * opts.series.length) / 2
  const legend = opts.series.map((s, i) =>
    `<rect x="${left + i * STEP}" y="${H - 24}" width="18" height="4" fill="${s.color}"/><text x="${left + i * STEP + 24}" y="${H - 18}" font-size="12">${esc(s.label)}</text>`
  ).join('\n')
  return `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif">
<rect width="${W}" height="${H}" fill="#fff"/>
<text x="${W / 2}" y="26" text-anchor="middle" font-size="17" font-weight="bold">${esc(opts.title)}</text>
<text x="${W / 2}" y="46" text-anchor="middle" font-size="12" fill="#555">${esc(opts.subtitle)}</text>
${panel(70, 'Throughput (acked frames/s)', 'frames/s', opts.counts, opts.series, (p) => p.frames_per_s)}
${panel(70 + PANEL_W + 100, 'p99 ack latency', 'ms', opts.counts, opts.series, (p) => p.p99_ms)}
${legend}
</svg>
`
}
