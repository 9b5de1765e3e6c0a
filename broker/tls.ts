// MQTT over TLS (docs/operations.md §3): a TLS listener that hands its sockets to the
// same broker as the TCP one (same log-in, limits and access rules), and that
// takes a renewed certificate without dropping a connection: reload() reads
// the files again, and the handshakes to come use the new secure context.
import { createServer, type Server, type Socket } from 'node:net'
import { createSecureContext, TLSSocket, type SecureContext, type TLSSocketOptions } from 'node:tls'
import type { FastifyBaseLogger } from 'fastify'
import { loadTlsFiles, type TlsFiles } from '../src/tls.js'

export interface TlsListener {
  server: Server
  /** Reads the files again; true when the new certificate is in use, false (logged, the old one kept) when a file is bad. */
  reload: () => boolean
}

export function createTlsListener (files: TlsFiles, opts: { highWaterMark: number, log: FastifyBaseLogger }, onSocket: (socket: TLSSocket) => void): TlsListener {
  let context: SecureContext = createSecureContext(loadTlsFiles(files))
  // Each socket is wrapped here rather than by tls.createServer, whose TLS
  // sockets keep a 16 KiB write high-water mark whatever its options say
  // (measured on Node 20): deliveries to a slow subscriber must stop where
  // they do on TCP (SLOW_CONSUMER_BYTES, hooks.ts).
  const server = createServer({ noDelay: true, highWaterMark: opts.highWaterMark }, (raw: Socket) => {
    raw.on('error', () => { raw.destroy() })
    // highWaterMark is what tls.connect itself passes to TLSSocket; @types/node does not list it.
    const options: TLSSocketOptions & { highWaterMark: number } = { isServer: true, secureContext: context, highWaterMark: opts.highWaterMark }
    const socket = new TLSSocket(raw, options)
    // A failed handshake (a plain-text client, one that distrusts the
    // certificate) ends that socket only; one that never ends is cut by
    // Aedes' connectTimeout, like a CONNECT that never comes.
    socket.on('error', () => { socket.destroy() })
    onSocket(socket)
  })
  return {
    server,
    reload () {
      try {
        context = createSecureContext(loadTlsFiles(files))
        opts.log.info({ certFile: files.certFile }, 'MQTT TLS certificate reloaded')
        return true
      } catch (err) {
        opts.log.error({ reason: (err as Error).message }, 'MQTT TLS certificate not reloaded: the old one stays in use')
        return false
      }
    }
  }
}
