// The PROXY protocol (HAProxy's, versions 1 and 2) on the plain MQTT port,
// with MQTT_PROXY_PROTOCOL=true. Behind a TCP load balancer every MQTT
// connection comes from the balancer's address, and the log-in limits of
// docs/protocol.md §9 would count a whole fleet as one client: one attacker's failures would
// block every robot. The balancer sends one header first that names the
// client's address (HAProxy: `send-proxy-v2`); that address is the client's.
//
// The header is framed here (version 1: a text line of at most 107 bytes;
// version 2: a 16-byte preamble and the length it gives) and parsed by
// proxy-protocol-js. A connection without a valid header within
// HEADER_TIMEOUT_MS is closed: on a port where the balancer sends one, a
// connection without one did not come through it. The port must be
// reachable by the balancer alone, as a proxy's X-Forwarded-For is trusted
// only with TRUST_PROXY: a client that can reach it directly can name any
// address.
import { isIP, type Socket } from 'node:net'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
// CommonJS
const { V1ProxyProtocol, V2ProxyProtocol, IPv4ProxyAddress, IPv6ProxyAddress } = require('proxy-protocol-js') as typeof import('proxy-protocol-js')

const V1_PREFIX = Buffer.from('PROXY ')
const V1_MAX = 107
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
/** The most a version 2 header may hold here (addresses and a few TLVs; the format allows 64 KiB). */
const V2_MAX = 16 + 1024
export const HEADER_TIMEOUT_MS = 5000

/** Client addresses read from PROXY headers, by socket. */
const proxied = new WeakMap<object, string>()

/** The client address a connection's PROXY header named, if it had one (a LOCAL header names none: the balancer's own check). */
export function proxiedAddress (conn: unknown): string | undefined {
  return typeof conn === 'object' && conn !== null ? proxied.get(conn) : undefined
}

type Parsed = { length: number, address: string | undefined } | 'more' | 'bad'

/** The header at the start of `buf`: its length and the source address, 'more' while incomplete, 'bad' when it is not one. */
export function parseProxyHeader (buf: Buffer): Parsed {
  const prefix = Math.min(buf.length, V2_SIGNATURE.length)
  if (buf.subarray(0, prefix).equals(V2_SIGNATURE.subarray(0, prefix))) {
    if (buf.length < 16) return 'more'
    const length = 16 + buf.readUInt16BE(14)
    if (length > V2_MAX) return 'bad'
    if (buf.length < length) return 'more'
    try {
      const header = V2ProxyProtocol.parse(new Uint8Array(buf.subarray(0, length)))
      const a = header.proxyAddress
      // command 0 is LOCAL (the balancer's own health check): no client address
      if (header.command === 0) return { length, address: undefined }
      if (a instanceof IPv4ProxyAddress) return { length, address: a.sourceAddress.address.join('.') }
      if (a instanceof IPv6ProxyAddress) return { length, address: ipv6(a.sourceAddress.address) }
      return 'bad' // UNIX sockets and UNSPEC carry no client address that limits could count
    } catch {
      return 'bad'
    }
  }
  const v1 = Math.min(buf.length, V1_PREFIX.length)
  if (!buf.subarray(0, v1).equals(V1_PREFIX.subarray(0, v1))) return 'bad'
  const end = buf.indexOf('\r\n')
  if (end < 0) return buf.length >= V1_MAX ? 'bad' : 'more'
  if (end + 2 > V1_MAX) return 'bad'
  const line = buf.toString('latin1', 0, end + 2)
  if (line.startsWith('PROXY UNKNOWN')) return { length: end + 2, address: undefined }
  try {
    const address = V1ProxyProtocol.parse(line).source.ipAddress
    return isIP(address) === 0 ? 'bad' : { length: end + 2, address }
  } catch {
    return 'bad'
  }
}

/** Sixteen bytes as an IPv6 address in its usual text (zeros compressed). */
function ipv6 (bytes: readonly number[]): string {
  const groups = Array.from({ length: 8 }, (_, i) => (((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0)).toString(16))
  return new URL(`http://[${groups.join(':')}]`).hostname.slice(1, -1)
}

/**
 * Reads the PROXY header that starts `socket`, remembers the address it
 * names, puts back what followed it, and hands the socket on to `ready`.
 * Closes the socket when no valid header arrives within HEADER_TIMEOUT_MS.
 */
export function acceptProxied (socket: Socket, ready: (socket: Socket) => void): void {
  let buf: Buffer = Buffer.alloc(0)
  const timer = setTimeout(() => { done(); socket.destroy() }, HEADER_TIMEOUT_MS)
  const done = (): void => {
    clearTimeout(timer)
    socket.off('readable', onReadable)
    socket.off('close', done)
  }
  const onReadable = (): void => {
    let chunk: Buffer | null
    while ((chunk = socket.read() as Buffer | null) !== null) {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk])
      const header = parseProxyHeader(buf)
      if (header === 'more') continue
      done()
      if (header === 'bad') { socket.destroy(); return }
      if (header.address !== undefined) proxied.set(socket, header.address)
      const rest = buf.subarray(header.length)
      if (rest.length > 0) socket.unshift(rest)
      ready(socket)
      return
    }
  }
  socket.on('readable', onReadable)
  socket.on('close', done)
}
