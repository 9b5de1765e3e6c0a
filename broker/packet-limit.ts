// A bound on the size of one MQTT packet. mqtt-packet buffers a packet until
// its declared length has arrived (up to 256 MiB), so an absurd length would
// let one client hold memory hostage. The parser is an mqtt-packet instance
// Aedes keeps per client; we check the length as soon as it is decoded and
// fail the parse, which makes Aedes close that connection.
import type { Client } from 'aedes'

interface Parser {
  packet: { length: number }
  _parseLength: () => boolean
  _emitError: (err: Error) => void
}

export function limitPacketSize (client: Client, limit: number): void {
  const parser = (client as unknown as { _parser?: Parser })._parser
  if (parser === undefined || typeof parser._parseLength !== 'function') {
    throw new Error('aedes client has no mqtt-packet parser: the packet size limit cannot be applied')
  }
  const parseLength = parser._parseLength
  parser._parseLength = function (this: Parser): boolean {
    const ok = parseLength.call(this)
    if (ok && this.packet.length > limit) {
      this._emitError(new Error(`packet of ${this.packet.length} bytes is over the limit of ${limit}`))
      return false
    }
    return ok
  }
}
