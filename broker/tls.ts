// MQTT over TLS (CONTRACT §13): a TLS listener that hands its sockets to the
// same broker as the TCP one (same log-in, limits and access rules), and that
// takes a renewed certificate without dropping a connection: reload() reads
// the files again and swaps the secure context for the handshakes to come.
import type { Socket } from 'node:net'
import { createServer, type Server, type TLSSocket } from 'node:tls'
import type { FastifyBaseLogger } from 'fastify'
import { loadTlsFiles, type TlsFiles } from '../src/tls.js'

export interface TlsListener {
  server: Server
  /** Reads the files again; true when the new certificate is in use, false (logged, the old one kept) when a file is bad. */
  reload: () => boolean
}

export function createTlsListener (files: TlsFiles, opts: { highWaterMark: number, log: FastifyBaseLogger }, onSocket: (socket: TLSSocket) => void): TlsListener {
  const server = createServer({ ...loadTlsFiles(files), noDelay: true, highWaterMark: opts.highWaterMark } as Parameters<typeof createServer>[0], (socket) => {
    socket.on('error', () => { socket.destroy() })
    onSocket(socket)
  })
  // A failed handshake (a plain-text client, a client that distrusts the
  // certificate) ends that socket only.
  server.on('tlsClientError', (_err: Error, socket: Socket) => { socket.destroy() })
  return {
    server,
    reload () {
      try {
        server.setSecureContext(loadTlsFiles(files))
        opts.log.info({ certFile: files.certFile }, 'MQTT TLS certificate reloaded')
        return true
      } catch (err) {
        opts.log.error({ reason: (err as Error).message }, 'MQTT TLS certificate not reloaded: the old one stays in use')
        return false
      }
    }
  }
}
