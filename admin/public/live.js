// The live panel of a robot's admin page: MQTT over WebSocket from the
// browser, logged in as the staff user with a short-lived access JWT from
// /admin/token.json (username + JWT, through connect.js). It subscribes to the
// robot's stats and presence and keeps two things apart: the ROBOT's presence
// ("Robot: online", from its retained presence topic: data connection,
// commands, since when) and the page's own connection ("Live feed:
// connected"). Each stats message updates the latest readings and adds a row;
// the speed and path plots (plot.js) cover the last few minutes, on the
// server's clock. Open commands are followed until they finish. Everything
// from the network goes in as text (textContent), never as HTML.
/* global mqtt */
(function () {
  'use strict'
  var root = document.getElementById('live')
  if (root === null || typeof mqtt === 'undefined' || typeof window.unitedLive !== 'function' || window.unitedPlot === undefined) return
  var plot = window.unitedPlot
  var uuid = root.dataset.robot
  var enabled = root.dataset.enabled === 'yes'
  var feedEl = document.getElementById('live-status')
  var robotEl = document.getElementById('live-robot')
  var rows = document.getElementById('live-rows')
  var MAX_ROWS = 20
  var MAX_POINTS = 600
  var WINDOW = Number(root.dataset.window) || 300000
  // The newest plots cover at least this much, so that a few seconds of data are not stretched edge to edge.
  var MIN_SPAN = 30000
  function parse (json, fallback) { try { return JSON.parse(json) } catch (e) { return fallback } }
  var fields = parse(root.dataset.fields || '{}', {})
  var points = parse(root.dataset.points || '[]', [])
  // The robot's model's telemetry fields ({field: {type}}): stats carry them as top-level keys.
  var modelFields = parse(root.dataset.modelFields || '{}', {})
  if (modelFields === null || typeof modelFields !== 'object') modelFields = {}
  if (!Array.isArray(points)) points = []
  // The server's clock: the stored points are times the server received
  // frames, and the live ones are put on the same clock.
  var skew = Number(root.dataset.now) - Date.now()
  if (!isFinite(skew)) skew = 0
  function now () { return Date.now() + skew }
  var lastSeen = Number(root.dataset.lastSeen) || null
  var feedUp = false

  function num (v) { return typeof v === 'number' && isFinite(v) ? v : null }
  /** A value with its field's decimals, as admin/units.ts writes it. */
  function fixed (v, decimals) {
    var n = num(v)
    if (n === null) return v === undefined || v === null ? '' : String(v)
    if (Math.abs(n) >= 1e9) return n.toExponential(3).replace('e+', 'e')
    var text = n.toFixed(decimals)
    return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text
  }
  function fmt (key, v) { return fixed(v, fields[key] ? fields[key].decimals : 3) }
  function utc (ms) { return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') }
  function iso (text) { return typeof text === 'string' ? text.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC') : '' }

  // ---- the page's own connection, and the robot's presence ----
  function setFeed (text, kind) {
    feedUp = text === 'connected'
    feedEl.textContent = 'Live feed: ' + text
    feedEl.className = 'feed ' + (kind || 'muted')
    robotEl.classList.toggle('stale', !feedUp)
    robotEl.title = feedUp ? '' : 'last known: the live feed is not connected'
  }
  function setPresence (p) {
    var online = p.online === true || p.data_connected === true
    var detail = !enabled && !online
      ? 'disabled: it cannot log in'
      : online
        ? (p.command_connected ? 'data connected, listening for commands' : 'data connected, not listening for commands')
        : 'no data connection, not listening for commands'
    var since = typeof p.since === 'string' && isFinite(Date.parse(p.since)) ? Date.parse(p.since) : null
    if (since !== null) detail += ' · ' + (online ? 'online' : 'offline') + ' since ' + utc(since)
    robotEl.className = 'robot-presence ' + (online ? 'on' : 'off') + (feedUp ? '' : ' stale')
    robotEl.querySelector('.dot').className = 'dot ' + (online ? 'on' : 'off')
    robotEl.querySelector('.robot-online').textContent = 'Robot: ' + (online ? 'online' : 'offline')
    robotEl.querySelector('.robot-detail').textContent = detail
    var facts = document.getElementById('robot-presence')
    while (facts.firstChild) facts.removeChild(facts.firstChild)
    var dot = document.createElement('span')
    dot.className = 'dot ' + (online ? 'on' : 'off')
    facts.appendChild(dot)
    facts.appendChild(document.createTextNode((online ? 'online' : 'offline') + (p.command_connected ? ', listening for commands' : '')))
    // Connecting and disconnecting are when the server records last_seen_at too.
    if (since !== null) seen(since)
  }
  function seen (ms) {
    if (lastSeen !== null && ms <= lastSeen) return
    lastSeen = ms
    var el = document.getElementById('robot-last-seen')
    el.textContent = utc(ms)
    el.title = utc(ms)
  }

  // ---- plots ----
  var drawing = null
  function draw () {
    drawing = null
    var to = now()
    var cut = to - WINDOW
    while (points.length > 0 && !(points[0].t >= cut)) points.shift()
    var from = points.length === 0 ? to - MIN_SPAN : Math.min(Math.max(points[0].t, cut), to - MIN_SPAN)
    var speed = document.getElementById('plot-speed')
    if (speed !== null) plot.render(speed, plot.timeModel(points.map(function (p) { return { t: p.t, v: p.speed } }), from, to, 'm/s'), 'no speed in the last ' + WINDOW / 60000 + ' min')
    var path = document.getElementById('plot-path')
    if (path !== null) plot.render(path, plot.pathModel(points, 'm'), 'no position in the last ' + WINDOW / 60000 + ' min')
  }
  function redraw () { if (drawing === null) drawing = setTimeout(draw, 200) }

  // ---- messages ----
  var KNOWN = ['robot_uuid', 'state', 'speed', 'position_x', 'position_y', 'angle_theta', 'datetime', 'data_connected', 'command_connected']
  function addRow (s, retained) {
    var tr = document.createElement('tr')
    var other = Object.keys(s).filter(function (k) { return KNOWN.indexOf(k) < 0 }).map(function (k) { return k + '=' + (fields[k] ? fmt(k, s[k]) : JSON.stringify(s[k])) }).join('  ')
    var cells = [
      [retained ? 'retained' : utc(now()), 'time'],
      [s.state, ''],
      [fmt('speed', s.speed), 'num'],
      [fmt('position_x', s.position_x), 'num'],
      [fmt('position_y', s.position_y), 'num'],
      [fmt('angle_theta', s.angle_theta), 'num'],
      [iso(s.datetime), ''],
      [other, 'data']
    ]
    cells.forEach(function (c) {
      var td = document.createElement('td')
      td.textContent = c[0] === undefined || c[0] === null ? '' : String(c[0])
      if (c[1] !== '') td.className = c[1]
      tr.appendChild(td)
    })
    tr.className = 'fresh'
    rows.insertBefore(tr, rows.firstChild)
    while (rows.children.length > MAX_ROWS) rows.removeChild(rows.lastChild)
  }
  function setReadings (s) {
    Object.keys(fields).forEach(function (k) {
      if (num(s[k]) === null) return
      var box = root.querySelector('#live-values [data-field="' + k + '"]')
      if (box === null) return
      box.hidden = false
      var value = box.querySelector('.value')
      value.textContent = fmt(k, s[k])
      value.title = String(s[k])
    })
  }
  /** A model field's value as the server writes it (admin/pages/robot-model.ts modelValue). */
  function modelValue (type, v) {
    if (typeof v === 'boolean') return v ? 'yes' : 'no'
    if (num(v) !== null) return fixed(v, type === 'integer' ? 0 : 2)
    return typeof v === 'string' ? v : JSON.stringify(v)
  }
  function setModelReadings (s) {
    Object.keys(modelFields).forEach(function (k) {
      if (!Object.prototype.hasOwnProperty.call(s, k) || s[k] === null || s[k] === undefined) return
      var box = document.querySelector('#model-values [data-field="' + k.replace(/[^a-z0-9_]/g, '') + '"]')
      if (box === null) return
      var value = box.querySelector('.value')
      var text = modelValue(modelFields[k] && modelFields[k].type, s[k])
      if (value.textContent !== text) {
        value.textContent = text
        value.classList.remove('fresh-cell')
        void value.offsetWidth
        value.classList.add('fresh-cell')
      }
      value.title = typeof s[k] === 'string' ? s[k] : JSON.stringify(s[k])
    })
  }
  var previous = null
  function onStats (s, retained) {
    addRow(s, retained)
    setReadings(s)
    setModelReadings(s)
    if (typeof s.state === 'string') document.getElementById('robot-state').textContent = s.state
    // A stats message follows stored frames, and also a change of state,
    // which repeats the last frame's values. So a message is a new frame
    // when a value or the robot's datetime moved, and adds a point to the
    // plots when the position moved, or nothing but the datetime did (a robot
    // standing still); a hardware or geo frame, which moves only its own
    // fields, does not. The retained message is the last one before the page
    // opened: its frame is already among the stored points.
    var NOT_DATA = ['robot_uuid', 'state', 'data_connected', 'command_connected']
    var POSITION = ['speed', 'position_x', 'position_y', 'angle_theta']
    var changed = Object.keys(s).filter(function (k) {
      return NOT_DATA.indexOf(k) < 0 && s[k] !== null && (previous === null || s[k] !== previous[k])
    })
    var frame = changed.length > 0
    var moved = changed.some(function (k) { return POSITION.indexOf(k) >= 0 })
    var otherFields = changed.some(function (k) { return POSITION.indexOf(k) < 0 && k !== 'datetime' })
    if (!retained && frame) seen(now())
    if (!retained && frame && (moved || !otherFields) && (num(s.position_x) !== null || num(s.speed) !== null)) {
      points.push({ t: now(), x: s.position_x, y: s.position_y, speed: s.speed })
      if (points.length > MAX_POINTS) points.shift()
      redraw()
    }
    previous = s
  }

  // ---- connection (connect.js): a fresh JWT for every (re)connection ----
  window.unitedLive({
    tokenUrl: root.dataset.tokenUrl,
    topics: ['robots/' + uuid + '/stats', 'robots/' + uuid + '/presence'],
    onStatus: setFeed,
    onMessage: function (topic, msg, retained) {
      if (topic.slice(-6) === '/stats') onStats(msg, retained)
      else if (topic.slice(-9) === '/presence') setPresence(msg)
    }
  })

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
          tr.querySelector('td.delivered').textContent = c.delivered_at ? iso(c.delivered_at) : '—'
          tr.querySelector('td.acked').textContent = c.acked_at ? iso(c.acked_at) : '—'
          tr.querySelector('td.expires').textContent = c.expires_at ? iso(c.expires_at) : '—'
          // a model command's result, from the robot's ack
          var result = tr.querySelector('small.result')
          if (result !== null && c.result !== null && c.result !== undefined) result.textContent = '→ ' + JSON.stringify(c.result)
          // a command past queued and pending can no longer be cancelled
          if (c.status !== 'queued' && c.status !== 'pending') tr.querySelector('td.actions').textContent = ''
        })
      })
      .catch(function () {})
      .then(function () { if (openCommands() > 0) setTimeout(pollCommands, 1000) })
  }

  draw()
  // the time axis moves on between messages
  setInterval(draw, 2000)
  setTimeout(pollCommands, 500)
})()
