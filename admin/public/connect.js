// MQTT over WebSocket from an admin page, as the logged-in staff user
// (docs/protocol.md §2.3: username + access JWT). Each (re)connection fetches a fresh
// five-minute JWT from the page's token URL, subscribes to the given topics
// (QoS 0) and hands every JSON object that arrives to onMessage, with whether
// it is a retained one (the last message before this subscription). A lost
// connection is retried with a doubling delay (1 s up to 30 s); an ended
// admin session stops the retries. Used by live.js and fleet.js.
/* global mqtt */
(function () {
  'use strict'
  window.unitedLive = function (opts) {
    var delay = 1000
    function connect () {
      opts.onStatus('connecting…', 'muted')
      fetch(opts.tokenUrl, { credentials: 'same-origin', headers: { accept: 'application/json' } })
        .then(function (r) { if (!r.ok) throw new Error('session'); return r.json() })
        .then(function (creds) {
          var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/mqtt'
          var client = mqtt.connect(url, {
            username: creds.username,
            password: creds.access,
            clientId: 'admin-' + Math.random().toString(16).slice(2, 14),
            clean: true,
            reconnectPeriod: 0,
            connectTimeout: 10000
          })
          var closed = false
          client.on('connect', function () {
            delay = 1000
            client.subscribe(opts.topics, { qos: 0 }, function (err) {
              opts.onStatus(err ? 'subscription refused' : 'connected', err ? 'bad' : 'good')
            })
          })
          client.on('message', function (topic, payload, packet) {
            var msg
            try { msg = JSON.parse(payload.toString()) } catch (e) { return }
            if (msg === null || typeof msg !== 'object') return
            opts.onMessage(topic, msg, packet !== undefined && packet.retain === true)
          })
          client.on('error', function () {})
          client.on('close', function () {
            if (closed) return
            closed = true
            client.end(true)
            opts.onStatus('disconnected, retrying…', 'bad')
            setTimeout(connect, delay)
            delay = Math.min(delay * 2, 30000)
          })
        })
        .catch(function () {
          opts.onStatus('disconnected: log in again to watch live', 'bad')
        })
    }
    connect()
  }
})()
