// MQTT over WebSocket on the HTTP server, at /mqtt (CONTRACT §1). ws 8 turns
// each socket into a stream that Aedes handles like a TCP connection; the
// upgrade request travels along so that `x-token` and `authentication`
// headers can stand in for the MQTT password.
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import { createWebSocketStream, WebSocketServer } from 'ws'
import { SLOW_CONSUMER_BYTES } from './hooks.js'

export const MQTT_WS_PATH = '/mqtt'

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
