// MQTT over WebSocket on the HTTP server, at /mqtt (CONTRACT §1). ws 8 turns
// each socket into a stream that Aedes handles like a TCP connection; the
// upgrade request travels along so that `x-token` and `authentication`
// headers can stand in for the MQTT password.
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { createWebSocketStream, WebSocketServer, type WebSocket } from 'ws'
import { SLOW_CONSUMER_BYTES } from './hooks.js'

export const MQTT_WS_PATH = '/mqtt'

/**
 * ws' stream sends every write as its own WebSocket message, and the MQTT
 * encoder writes a packet in several pieces (header, topic, payload…): one
 * message and one system call per piece. The encoder corks the stream around
 * each packet, so with a `_writev` the pieces written in one tick (a packet,
 * or the acks of a batch) leave as one message. MQTT over WebSocket allows
 * it: a message may hold several or partial packets (MQTT 3.1.1 §6).
 */
function coalesceWrites (stream: Duplex, ws: WebSocket): void {
  (stream as Duplex & { _writev: (chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void) => void })._writev = (chunks, cb) => {
    ws.send(chunks.length === 1 ? (chunks[0] as { chunk: Buffer }).chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb)
  }
}

export function attachWebSocket (server: Server, handle: (stream: Duplex, req: IncomingMessage) => void, opts: { maxPayload: number }) {
  const wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayload, perMessageDeflate: false, clientTracking: true })

  function onUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '/').split('?')[0]
    if (path !== MQTT_WS_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    socket.on('error', () => { socket.destroy() })
    wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws, { writableHighWaterMark: SLOW_CONSUMER_BYTES })
      coalesceWrites(stream, ws)
      // Errors of one socket (a bad frame, a reset) end that connection only.
      stream.on('error', () => { stream.destroy() })
      handle(stream, req)
    })
  }
  server.on('upgrade', onUpgrade)

  return {
    /** Stops accepting upgrades and closes every WebSocket. */
    close (): void {
      server.off('upgrade', onUpgrade)
      for (const ws of wss.clients) ws.terminate()
      wss.close()
    }
  }
}
