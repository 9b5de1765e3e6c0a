// MQTT over WebSocket on the HTTP server, at /mqtt (docs/protocol.md §1).
// websocket-stream's server does the handshake (with its ws) and turns each
// socket into a stream that Aedes handles like a TCP connection; the upgrade
// request travels along so that `x-token` and `authentication` headers can
// stand in for the MQTT password.
//
// websocket-stream 5.5.2 declares ws 3, which is unmaintained and crashes on
// an upgrade request with more headers than Node keeps (CVE-2024-37890). The
// override in package.json puts ws 8 under it; test/broker/websocket.test.ts
// fails if an older ws is the one websocket-stream loads.
import type { IncomingMessage, Server } from 'node:http'
import type { Duplex } from 'node:stream'
import websocketStream from 'websocket-stream'
import type { WebSocket, WebSocketServer } from 'ws'
import { SLOW_CONSUMER_BYTES } from './hooks.js'

export const MQTT_WS_PATH = '/mqtt'

// Its bundled types name ws' CommonJS typings, which ws' ESM types do not match.
type StreamServer = WebSocketServer & { on: (event: 'stream', listener: (stream: Duplex, req: IncomingMessage) => void) => StreamServer }
const createStreamServer = websocketStream.createServer as unknown as (opts: ConstructorParameters<typeof WebSocketServer>[0]) => StreamServer

interface WritableState { length: number, needDrain: boolean, highWaterMark: number }

/**
 * websocket-stream's stream is a readable-stream 2 Transform. Its `_writev`
 * already sends the pieces the MQTT encoder writes in one tick (a packet, or
 * the acks of a batch: the encoder corks around each packet) as one
 * WebSocket message, which MQTT over WebSocket allows (MQTT 3.1.1 §6). Two
 * things it lacks are given here, from its own writable state:
 * - the TCP listener's write high-water mark (it keeps 16 KiB, which Aedes'
 *   drain handling and the slow-consumer check would read as a stuck client);
 * - `writableLength` and `writableNeedDrain`, which Node's streams have and
 *   readable-stream 2 does not: the slow-consumer check reads them (hooks.ts).
 */
function asNodeStream (stream: Duplex): Duplex {
  const state = (stream as Duplex & { _writableState: WritableState })._writableState
  state.highWaterMark = SLOW_CONSUMER_BYTES
  Object.defineProperties(stream, {
    writableLength: { get: () => state.length },
    writableNeedDrain: { get: () => state.needDrain },
    writableHighWaterMark: { get: () => state.highWaterMark }
  })
  return stream
}

export function attachWebSocket (server: Server, handle: (stream: Duplex, req: IncomingMessage) => void, opts: { maxPayload: number }) {
  // The stream's options are the server's: no `objectMode`, so binary, with the `_writev` above.
  const wss = createStreamServer({ noServer: true, maxPayload: opts.maxPayload, perMessageDeflate: false, clientTracking: true })
  wss.on('stream', (stream, req) => {
    asNodeStream(stream)
    // Errors of one socket (a bad frame, a reset) end that connection only.
    stream.on('error', () => { stream.destroy() })
    handle(stream, req)
  })

  function onUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '/').split('?')[0]
    if (path !== MQTT_WS_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
      return
    }
    socket.on('error', () => { socket.destroy() })
    try {
      // In noServer mode the server learns of a socket from its own 'connection' event.
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => { wss.emit('connection', ws, req) })
    } catch {
      // A throw here would end the process (an 'upgrade' listener): one bad request ends its socket only.
      socket.destroy()
    }
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
