// The live panel of a robot's admin page (CONTRACT §8): MQTT over WebSocket
// from the browser, logged in as the staff user with a short-lived access JWT
// from /admin/token.json (CONTRACT §2: username + JWT). It subscribes to the
// robot's stats and presence (through connect.js), adds a row per message,
// redraws the path and speed plots, and follows the status of open commands. Everything from the
// network is put in the page as text (textContent), never as HTML.
/* global mqtt */
(function () {
  'use strict'
  var root = document.getElementById('live')
  if (root === null || typeof mqtt === 'undefined' || typeof window.unitedLive !== 'function') return
  var uuid = root.dataset.robot
  var statusEl = document.getElementById('live-status')
  var rows = document.getElementById('live-rows')
  var MAX_ROWS = 20
  var MAX_POINTS = 200
  var points = []
  try { points = JSON.parse(root.dataset.points || '[]') } catch (e) { points = [] }

  function setStatus (text, kind) {
    statusEl.textContent = text
    statusEl.className = kind || 'muted'
  }

  function num (v) { return typeof v === 'number' && isFinite(v) ? v : null }
  function fmt (v) { var n = num(v); return n === null ? '' : String(Math.round(n * 1000) / 1000) }

  // ---- plots ----
  var SVG = 'http://www.w3.org/2000/svg'
  function svgEl (name, attrs) {
    var el = document.createElementNS(SVG, name)
    for (var k in attrs) el.setAttribute(k, attrs[k])
    return el
  }
  function scale (values, lo, hi) {
    var min = Math.min.apply(null, values)
    var max = Math.max.apply(null, values)
    if (max - min < 1e-9) { min -= 1; max += 1 }
    return function (v) { return lo + (v - min) / (max - min) * (hi - lo) }
  }
  function plot (id, xs, ys, emptyText) {
    var svg = document.getElementById(id)
    if (svg === null) return
    while (svg.firstChild) svg.removeChild(svg.firstChild)
    svg.appendChild(svgEl('rect', { x: 0, y: 0, width: 300, height: 200, class: 'plot-bg' }))
    if (xs.length === 0) {
      var t = svgEl('text', { x: 150, y: 100, 'text-anchor': 'middle', class: 'plot-empty' })
      t.textContent = emptyText
      svg.appendChild(t)
      return
    }
    var sx = scale(xs, 12, 288)
    var sy = scale(ys, 188, 12)
    var d = xs.map(function (x, i) { return sx(x).toFixed(1) + ',' + sy(ys[i]).toFixed(1) }).join(' ')
    svg.appendChild(svgEl('polyline', { points: d, class: 'plot-line' }))
    var last = xs.length - 1
    svg.appendChild(svgEl('circle', { cx: sx(xs[last]).toFixed(1), cy: sy(ys[last]).toFixed(1), r: 4, class: 'plot-dot' }))
  }
  function draw () {
    var path = points.filter(function (p) { return num(p.x) !== null && num(p.y) !== null })
    plot('plot-path', path.map(function (p) { return p.x }), path.map(function (p) { return p.y }), 'no position yet')
    var speed = points.filter(function (p) { return num(p.speed) !== null })
    plot('plot-speed', speed.map(function (p, i) { return i }), speed.map(function (p) { return p.speed }), 'no speed yet')
  }

  // ---- messages ----
  var KNOWN = ['robot_uuid', 'state', 'speed', 'position_x', 'position_y', 'angle_theta', 'datetime', 'data_connected', 'command_connected']
  function addRow (s) {
    var tr = document.createElement('tr')
    var other = Object.keys(s).filter(function (k) { return KNOWN.indexOf(k) < 0 }).map(function (k) { return k + '=' + JSON.stringify(s[k]) }).join('  ')
    var cells = [new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC'), s.state, fmt(s.speed), fmt(s.position_x), fmt(s.position_y), fmt(s.angle_theta), s.datetime, other]
    cells.forEach(function (c) {
      var td = document.createElement('td')
      td.textContent = c === undefined || c === null ? '' : String(c)
      tr.appendChild(td)
    })
    tr.className = 'fresh'
    rows.insertBefore(tr, rows.firstChild)
    while (rows.children.length > MAX_ROWS) rows.removeChild(rows.lastChild)
  }
  function onStats (s) {
    addRow(s)
    if (typeof s.state === 'string') document.getElementById('robot-state').textContent = s.state
    document.getElementById('robot-last-seen').textContent = new Date().toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC')
    if (num(s.position_x) !== null || num(s.speed) !== null) {
      var last = points[points.length - 1]
      if (!last || last.t !== s.datetime || last.x !== s.position_x || last.y !== s.position_y) {
        points.push({ t: s.datetime, x: s.position_x, y: s.position_y, speed: s.speed })
        if (points.length > MAX_POINTS) points.shift()
        draw()
      }
    }
  }
  function onPresence (p) {
    var el = document.getElementById('robot-presence')
    while (el.firstChild) el.removeChild(el.firstChild)
    var dot = document.createElement('span')
    dot.className = 'dot ' + (p.online ? 'on' : 'off')
    el.appendChild(dot)
    el.appendChild(document.createTextNode((p.online ? 'online' : 'offline') + (p.command_connected ? ', listening for commands' : '')))
  }

  // ---- connection (connect.js): a fresh JWT for every (re)connection ----
  function connect () {
    window.unitedLive({
      tokenUrl: root.dataset.tokenUrl,
      topics: ['robots/' + uuid + '/stats', 'robots/' + uuid + '/presence'],
      onStatus: setStatus,
      onMessage: function (topic, msg) {
        if (topic.slice(-6) === '/stats') onStats(msg)
        else if (topic.slice(-9) === '/presence') onPresence(msg)
      }
    })
  }

  // ---- open commands: follow their status until done, failed, expired or cancelled ----
  function openCommands () {
    return document.querySelectorAll('#command-rows td.status-queued, #command-rows td.status-pending, #command-rows td.status-delivered').length
  }
  function pollCommands () {
    if (openCommands() === 0) return
    fetch(root.dataset.commandsUrl, { credentials: 'same-origin', headers: { accept: 'application/json' } })
      .then(function (r) { if (!r.ok) throw new Error('http ' + r.status); return r.json() })
      .then(function (body) {
        body.items.forEach(function (c) {
          var tr = document.querySelector('#command-rows tr[data-command-id="' + c.id.replace(/[^0-9a-f-]/gi, '') + '"]')
          if (tr === null) return
          var st = tr.querySelector('td.status')
          st.textContent = c.status
          st.className = 'status status-' + c.status.replace(/[^a-z]/g, '')
          tr.querySelector('td.delivered').textContent = c.delivered_at ? c.delivered_at.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—'
          tr.querySelector('td.acked').textContent = c.acked_at ? c.acked_at.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—'
          tr.querySelector('td.expires').textContent = c.expires_at ? c.expires_at.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '—'
          // a command past queued and pending can no longer be cancelled
          if (c.status !== 'queued' && c.status !== 'pending') tr.querySelector('td.actions').textContent = ''
        })
      })
      .catch(function () {})
      .then(function () { if (openCommands() > 0) setTimeout(pollCommands, 1000) })
  }

  draw()
  connect()
  setTimeout(pollCommands, 500)
})()
