// The fleet page's live rows (/admin/fleet): subscribes, through connect.js,
// to the stats and presence of the robots listed on this page only, and puts
// each message's values in that robot's row. Stats and presence are retained,
// so every row shows its robot's last values as soon as the page connects.
// "Last seen" is "now" while a robot is online; for an offline robot it is
// the stored time (the page's, or the `since` of the presence that took it
// offline, whichever is later), said as "3 min ago" on the server's clock and
// kept current. Everything from the network goes in as text (textContent),
// never as HTML.
(function () {
  'use strict'
  var table = document.getElementById('fleet')
  if (table === null || typeof window.unitedLive !== 'function') return
  var statusEl = document.getElementById('fleet-status')
  var rows = {}
  Array.prototype.forEach.call(table.querySelectorAll('tbody tr[data-robot]'), function (tr) { rows[tr.dataset.robot] = tr })
  var uuids = Object.keys(rows)
  if (uuids.length === 0) return
  var fields = {}
  try { fields = JSON.parse(table.dataset.fields || '{}') } catch (e) { fields = {} }
  var skew = Number(table.dataset.now) - Date.now()
  if (!isFinite(skew)) skew = 0
  function now () { return Date.now() + skew }

  /** A value with its field's decimals, as admin/units.ts writes it. */
  function fmt (key, v) {
    if (typeof v !== 'number' || !isFinite(v)) return null
    if (Math.abs(v) >= 1e9) return v.toExponential(3).replace('e+', 'e')
    var text = v.toFixed(fields[key] ? fields[key].decimals : 2)
    return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text
  }
  function utc (ms) { return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC') }
  /** "3 s ago", "5 min ago", … as the server's helpers say it. */
  function ago (ms) {
    var s = Math.max(0, Math.round((now() - ms) / 1000))
    if (s < 60) return s + ' s ago'
    if (s < 3600) return Math.floor(s / 60) + ' min ago'
    if (s < 86400) return Math.floor(s / 3600) + ' h ago'
    return Math.floor(s / 86400) + ' d ago'
  }

  function setCell (tr, name, text) {
    var td = tr.querySelector('.' + name)
    if (td === null || text === null || text === undefined) return
    if (td.textContent !== text) {
      td.textContent = text
      td.classList.remove('fresh-cell')
      void td.offsetWidth // restart the highlight
      td.classList.add('fresh-cell')
    }
  }
  function lastSeen (tr) {
    var td = tr.querySelector('td.last-seen')
    var at = Number(td.dataset.at)
    td.textContent = tr.dataset.online === 'yes' ? 'now' : td.dataset.at !== '' && isFinite(at) ? ago(at) : 'never'
  }
  function onStats (tr, s) {
    ;['speed', 'position_x', 'position_y', 'battery', 'cpu'].forEach(function (k) { setCell(tr, k, fmt(k, s[k])) })
    if (typeof s.datetime === 'string') setCell(tr, 'datetime', s.datetime.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC'))
    if (typeof s.state === 'string') setCell(tr, 'state', s.state)
  }
  function onPresence (tr, p) {
    var online = p.online === true
    var dot = tr.querySelector('td.presence .dot')
    dot.className = 'dot ' + (online ? 'on' : 'off')
    setCell(tr, 'presence-text', (online ? 'online' : 'offline') + (p.command_connected ? ', commands' : ''))
    tr.dataset.online = online ? 'yes' : 'no'
    // The server records last_seen_at when a robot connects or disconnects: `since`.
    var since = typeof p.since === 'string' ? Date.parse(p.since) : NaN
    var td = tr.querySelector('td.last-seen')
    if (isFinite(since) && !(Number(td.dataset.at) >= since)) {
      td.dataset.at = String(since)
      td.title = utc(since)
    }
    lastSeen(tr)
  }
  // robots/{uuid}/stats and robots/{uuid}/presence: the uuid is the second level
  window.unitedLive({
    tokenUrl: table.dataset.tokenUrl,
    topics: uuids.reduce(function (all, u) { return all.concat(['robots/' + u + '/stats', 'robots/' + u + '/presence']) }, []),
    onStatus: function (text, kind) { statusEl.textContent = 'Live feed: ' + text; statusEl.className = kind },
    onMessage: function (topic, msg) {
      var parts = topic.split('/')
      var tr = Object.prototype.hasOwnProperty.call(rows, parts[1]) ? rows[parts[1]] : undefined
      if (tr === undefined) return
      if (parts[2] === 'stats') onStats(tr, msg)
      else if (parts[2] === 'presence') onPresence(tr, msg)
    }
  })
  // "3 min ago" moves on
  setInterval(function () { uuids.forEach(function (u) { lastSeen(rows[u]) }) }, 10000)
})()
