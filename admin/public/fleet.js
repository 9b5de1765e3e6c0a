// The fleet page's live rows (/admin/fleet): subscribes, through connect.js,
// to the stats and presence of the robots listed on this page only, and puts
// each message's values in that robot's row. Stats and presence are retained,
// so every row shows its robot's last values as soon as the page connects.
// Everything from the network goes in as text (textContent), never as HTML.
(function () {
  'use strict'
  var table = document.getElementById('fleet')
  if (table === null || typeof window.unitedLive !== 'function') return
  var statusEl = document.getElementById('fleet-status')
  var rows = {}
  Array.prototype.forEach.call(table.querySelectorAll('tbody tr[data-robot]'), function (tr) { rows[tr.dataset.robot] = tr })
  var uuids = Object.keys(rows)
  if (uuids.length === 0) return

  function fmt (v) { return typeof v === 'number' && isFinite(v) ? String(Math.round(v * 100) / 100) : null }
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
  function onStats (tr, s) {
    ;['speed', 'position_x', 'position_y', 'battery', 'cpu'].forEach(function (k) { setCell(tr, k, fmt(s[k])) })
    if (typeof s.datetime === 'string') setCell(tr, 'datetime', s.datetime.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC'))
    if (typeof s.state === 'string') setCell(tr, 'state', s.state)
  }
  function onPresence (tr, p) {
    var dot = tr.querySelector('td.presence .dot')
    dot.className = 'dot ' + (p.online ? 'on' : 'off')
    setCell(tr, 'presence-text', (p.online ? 'online' : 'offline') + (p.command_connected ? ', commands' : ''))
    if (p.online) setCell(tr, 'last-seen', 'now')
  }
  // robots/{uuid}/stats and robots/{uuid}/presence: the uuid is the second level
  window.unitedLive({
    tokenUrl: table.dataset.tokenUrl,
    topics: uuids.reduce(function (all, u) { return all.concat(['robots/' + u + '/stats', 'robots/' + u + '/presence']) }, []),
    onStatus: function (text, kind) { statusEl.textContent = 'live: ' + text; statusEl.className = kind },
    onMessage: function (topic, msg) {
      var parts = topic.split('/')
      var tr = Object.prototype.hasOwnProperty.call(rows, parts[1]) ? rows[parts[1]] : undefined
      if (tr === undefined) return
      if (parts[2] === 'stats') onStats(tr, msg)
      else if (parts[2] === 'presence') onPresence(tr, msg)
    }
  })
})()
