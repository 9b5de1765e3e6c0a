// The live panel's plots (live.js): speed over time and the path, as SVG with
// axes, tick labels, units and UTC times, drawn in the browser as messages
// arrive. The scales follow the history charts (admin/charts.ts) rule for
// rule, so that a robot sending any finite double (±1.8e308, 5e-324, a
// glitching 1.37e12) cannot hang the page: ticks are (k + i) × step for a
// counted i, never a running sum; a span below the values' precision is
// padded; spans are taken in halves, so nothing overflows to Infinity; every
// pixel is finite and inside the plot. test/admin/live-plot.test.ts checks
// that these ticks are the history charts' own, and fuzzes the models.
// Text goes in with textContent only, never as markup.
(function (root) {
  'use strict'
  var MAX = Number.MAX_VALUE
  var MAX_TICKS = 16
  var PRECISION = 1e-9
  var MIN_SPAN = 1e-300
  var MAX_TIME = 8.64e15

  // The drawing, in the SVG's own units (viewBox); the margins hold the labels.
  var WIDTH = 360
  var HEIGHT = 220
  var PLOT = { left: 56, right: WIDTH - 18, top: 22, bottom: HEIGHT - 30 }

  function clamp (v, lo, hi) { return Math.min(hi, Math.max(lo, v)) }
  function middle (a, b) { return a / 2 + b / 2 }
  function round1 (v) { return Math.round(v * 10) / 10 }
  function share (v, lo, hi) {
    var half = hi / 2 - lo / 2
    var r = half > 0 ? (v / 2 - lo / 2) / half : 0.5
    return isFinite(r) ? r : 0.5
  }
  function inside (p, lo, hi) { return round1(isNaN(p) ? (lo + hi) / 2 : clamp(p, lo, hi)) }
  function pixel (from, to, r) { return inside(from + r * (to - from), Math.min(from, to), Math.max(from, to)) }

  function scientific (value, digits) {
    var parts = value.toExponential(clamp(digits, 1, 21) - 1).split('e')
    var m = parts[0].indexOf('.') >= 0 ? parts[0].replace(/\.?0+$/, '') : parts[0]
    return m + 'e' + parts[1].replace('+', '')
  }

  /** The labels of one axis: fixed with at most 3 decimals, or 1.05e10 / 2e-300 (as admin/charts.ts). */
  function labeller (step, largest) {
    function log (v) { return Math.floor(Math.log10(v) + 1e-9) }
    if (largest < 1e6 && step >= 1e-3) {
      var decimals = clamp(-log(step), 0, 3)
      return function (value) {
        var fixed = value.toFixed(decimals)
        return /^-0(\.0*)?$/.test(fixed) ? fixed.slice(1) : fixed
      }
    }
    var digits = clamp(log(largest) - log(step) + 1, 1, 12)
    return function (value) { return value === 0 ? '0' : scientific(value, digits) }
  }

  function extent (values) {
    var lo = Infinity
    var hi = -Infinity
    for (var i = 0; i < values.length; i++) {
      if (values[i] < lo) lo = values[i]
      if (values[i] > hi) hi = values[i]
    }
    return [lo, hi]
  }

  /** "Nice" ticks over [lo, hi], as niceTicks of admin/charts.ts. */
  function niceTicks (lo, hi, count) {
    var n = isFinite(count) ? clamp(Math.round(count), 2, 10) : 5
    lo = clamp(lo, -MAX, MAX)
    hi = clamp(hi, -MAX, MAX)
    if (isNaN(lo) && isNaN(hi)) { lo = 0; hi = 1 } else if (isNaN(lo)) lo = hi; else if (isNaN(hi)) hi = lo
    if (lo > hi) { var swap = lo; lo = hi; hi = swap }
    var magnitude = Math.max(Math.abs(lo), Math.abs(hi))
    var half = hi / 2 - lo / 2
    if (!(half >= MIN_SPAN / 2 && half >= magnitude * PRECISION / 2)) {
      var centre = middle(lo, hi)
      var pad = magnitude === 0 ? 1 : Math.max(magnitude / 10, MIN_SPAN)
      lo = Math.max(-MAX, centre - pad)
      hi = Math.min(MAX, centre + pad)
    }
    var span = hi - lo
    var raw = isFinite(span) ? span / n : (hi / 2 - lo / 2) / n * 2
    var power = Math.pow(10, Math.floor(Math.log10(raw)))
    var step = 1e308
    var nice = [1, 2, 5, 10]
    for (var k = 0; k < nice.length; k++) {
      var s = nice[k] * power
      if (s >= raw && isFinite(s)) { step = s; break }
    }
    var first = Math.floor(lo / step)
    var last = Math.ceil(hi / step)
    var ticks = []
    for (var i = 0; i <= last - first && i < MAX_TICKS; i++) {
      var v = (first + i) * step
      if (isFinite(v)) ticks.push(v)
    }
    return { lo: Math.max(-MAX, Math.min(lo, first * step)), hi: Math.min(MAX, Math.max(hi, last * step)), step: step, ticks: ticks }
  }

  var SECOND = 1000
  var MINUTE = 60 * SECOND
  var HOUR = 60 * MINUTE
  var DAY = 24 * HOUR
  var TIME_STEPS = [SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY]
  function two (n) { return (n < 10 ? '0' : '') + n }

  /** Time ticks (UTC) over [from, to] on round times, at most 5 (both ends included); "HH:MM:SS" below a minute's step. */
  function timeTicks (from, to) {
    if (!(isFinite(from) && isFinite(to) && from <= to)) return []
    from = clamp(from, -MAX_TIME, MAX_TIME)
    to = clamp(to, -MAX_TIME, MAX_TIME)
    var span = to - from
    var step = DAY * Math.max(1, Math.ceil(span / DAY / 4))
    for (var k = 0; k < TIME_STEPS.length; k++) if (span / TIME_STEPS[k] <= 4) { step = TIME_STEPS[k]; break }
    var first = Math.ceil(from / step)
    var ticks = []
    for (var i = 0; i <= 6 && (first + i) * step <= to; i++) {
      var at = (first + i) * step
      var d = new Date(at)
      var label = step >= DAY
        ? two(d.getUTCMonth() + 1) + '-' + two(d.getUTCDate())
        : two(d.getUTCHours()) + ':' + two(d.getUTCMinutes()) + (step < MINUTE ? ':' + two(d.getUTCSeconds()) : '')
      ticks.push({ at: at, label: label })
    }
    return ticks
  }

  /** Samples further apart than this break the line: a robot that stopped sending is not drawn as a straight line. */
  var GAP_MS = 15 * SECOND

  /**
   * A value over time: points [{t (ms), v}] between `from` and `to`, as a
   * model: the lines (one per run without a gap), lone points, ticks and labels.
   */
  function timeModel (points, from, to, unit) {
    var left = PLOT.left; var right = PLOT.right; var top = PLOT.top; var bottom = PLOT.bottom
    var pts = points.filter(function (p) { return typeof p.v === 'number' && isFinite(p.v) && isFinite(p.t) && p.t >= from && p.t <= to })
    var ext = extent(pts.map(function (p) { return p.v }))
    var y = pts.length === 0 ? niceTicks(0, 1, 4) : niceTicks(ext[0], ext[1], 4)
    function sx (t) { return pixel(left, right, share(t, from, to)) }
    function sy (v) { return pixel(bottom, top, share(v, y.lo, y.hi)) }
    var lines = []
    var dots = []
    var run = []
    function flush () {
      if (run.length === 1) dots.push({ x: sx(run[0].t), y: sy(run[0].v), kind: 'point' })
      else if (run.length > 1) lines.push(run.map(function (p) { return sx(p.t) + ',' + sy(p.v) }).join(' '))
      run = []
    }
    for (var i = 0; i < pts.length; i++) {
      if (run.length > 0 && pts[i].t - run[run.length - 1].t > GAP_MS) flush()
      run.push(pts[i])
    }
    flush()
    var last = pts[pts.length - 1]
    if (last !== undefined) dots.push({ x: sx(last.t), y: sy(last.v), kind: 'end' })
    var label = labeller(y.step, Math.max(Math.abs(y.lo), Math.abs(y.hi)))
    return {
      plot: PLOT,
      width: WIDTH,
      height: HEIGHT,
      yTitle: unit,
      xTitle: 'time (UTC)',
      xTicks: timeTicks(from, to).map(function (tick) { return { at: sx(tick.at), label: tick.label } }),
      yTicks: y.ticks.map(function (v) { return { at: sy(v), label: label(v) } }),
      lines: lines,
      dots: dots,
      empty: pts.length === 0
    }
  }

  /** The path: position_x against position_y on equal scales (a metre as long across as up), from a start to an end dot. */
  function pathModel (points, unit) {
    var left = PLOT.left; var right = PLOT.right; var top = PLOT.top; var bottom = PLOT.bottom
    var pts = points.filter(function (p) { return typeof p.x === 'number' && typeof p.y === 'number' && isFinite(p.x) && isFinite(p.y) })
    var w = right - left
    var h = bottom - top
    var ex = extent(pts.map(function (p) { return p.x }))
    var ey = extent(pts.map(function (p) { return p.y }))
    if (pts.length === 0) { ex = [0, 1]; ey = [0, 1] }
    // at least a metre up: a robot standing still gets tenths of a metre on its axes, not 3.4999e0
    var perPixel = Math.max(ex[1] / w - ex[0] / w, ey[1] / h - ey[0] / h, 1 / h)
    var xt = niceTicks(middle(ex[0], ex[1]) - perPixel * w / 2, middle(ex[0], ex[1]) + perPixel * w / 2, 5)
    var yt = niceTicks(middle(ey[0], ey[1]) - perPixel * h / 2, middle(ey[0], ey[1]) + perPixel * h / 2, 4)
    var scale = Math.max(xt.hi / w - xt.lo / w, yt.hi / h - yt.lo / h)
    var mx = middle(xt.lo, xt.hi)
    var my = middle(yt.lo, yt.hi)
    var xs = niceTicks(mx - scale * w / 2, mx + scale * w / 2, 5)
    var ys = niceTicks(my - scale * h / 2, my + scale * h / 2, 4)
    function rx (v) { return left + w / 2 + (v / 2 - mx / 2) / (scale / 2) }
    function ry (v) { return top + h / 2 - (v / 2 - my / 2) / (scale / 2) }
    function sx (v) { return inside(rx(v), left, right) }
    function sy (v) { return inside(ry(v), top, bottom) }
    var xLabel = labeller(xs.step, Math.max(Math.abs(xs.lo), Math.abs(xs.hi)))
    var yLabel = labeller(ys.step, Math.max(Math.abs(ys.lo), Math.abs(ys.hi)))
    var dots = []
    if (pts.length > 0) {
      dots.push({ x: sx(pts[0].x), y: sy(pts[0].y), kind: 'start' })
      dots.push({ x: sx(pts[pts.length - 1].x), y: sy(pts[pts.length - 1].y), kind: 'end' })
    }
    return {
      plot: PLOT,
      width: WIDTH,
      height: HEIGHT,
      yTitle: 'y (' + unit + ')',
      xTitle: 'x (' + unit + ')',
      xTicks: xs.ticks.filter(function (v) { return rx(v) >= left - 0.05 && rx(v) <= right + 0.05 }).map(function (v) { return { at: sx(v), label: xLabel(v) } }),
      yTicks: ys.ticks.filter(function (v) { return ry(v) >= top - 0.05 && ry(v) <= bottom + 0.05 }).map(function (v) { return { at: sy(v), label: yLabel(v) } }),
      lines: pts.length > 1 ? [pts.map(function (p) { return sx(p.x) + ',' + sy(p.y) }).join(' ')] : [],
      dots: dots,
      empty: pts.length === 0
    }
  }

  // ---- drawing a model into an <svg> ----
  var SVG = 'http://www.w3.org/2000/svg'
  function el (name, attrs, text) {
    var e = root.document.createElementNS(SVG, name)
    for (var k in attrs) e.setAttribute(k, String(attrs[k]))
    if (text !== undefined) e.textContent = text
    return e
  }

  /** Replaces the content of `svg` with the model's axes, grid, labels, lines and dots; `empty` is the text shown without data. */
  function render (svg, model, empty) {
    var p = model.plot
    while (svg.firstChild) svg.removeChild(svg.firstChild)
    svg.setAttribute('viewBox', '0 0 ' + model.width + ' ' + model.height)
    svg.appendChild(el('rect', { class: 'plot-bg', x: p.left, y: p.top, width: p.right - p.left, height: p.bottom - p.top }))
    var yAxis = el('g', { class: 'axis y' })
    model.yTicks.forEach(function (t) {
      yAxis.appendChild(el('line', { class: 'grid', x1: p.left, x2: p.right, y1: t.at, y2: t.at }))
      yAxis.appendChild(el('text', { x: p.left - 5, y: round1(t.at + 4), 'text-anchor': 'end' }, t.label))
    })
    yAxis.appendChild(el('text', { class: 'unit', x: 4, y: 12 }, model.yTitle))
    svg.appendChild(yAxis)
    var xAxis = el('g', { class: 'axis x' })
    model.xTicks.forEach(function (t) {
      xAxis.appendChild(el('line', { class: 'grid', x1: t.at, x2: t.at, y1: p.top, y2: p.bottom }))
      xAxis.appendChild(el('text', { x: t.at, y: p.bottom + 16, 'text-anchor': 'middle' }, t.label))
    })
    xAxis.appendChild(el('text', { class: 'unit', x: p.right, y: model.height - 2, 'text-anchor': 'end' }, model.xTitle))
    svg.appendChild(xAxis)
    model.lines.forEach(function (d) { svg.appendChild(el('polyline', { class: 'plot-line', points: d })) })
    model.dots.forEach(function (d) { svg.appendChild(el('circle', { class: 'plot-dot ' + d.kind, cx: d.x, cy: d.y, r: d.kind === 'point' ? 2.5 : 4 })) })
    if (model.empty) svg.appendChild(el('text', { class: 'plot-empty', x: (p.left + p.right) / 2, y: (p.top + p.bottom) / 2, 'text-anchor': 'middle' }, empty))
  }

  root.unitedPlot = { niceTicks: niceTicks, timeTicks: timeTicks, labeller: labeller, timeModel: timeModel, pathModel: pathModel, render: render, MAX_TICKS: MAX_TICKS, WIDTH: WIDTH, HEIGHT: HEIGHT }
})(typeof window !== 'undefined' ? window : globalThis)
