// How a client presents a user JWT (docs/protocol.md §2.3). Pure: no I/O. Both the
// REST guard and the MQTT broker's log-in read headers through this.

/**
 * `Authorization: Bearer <jwt>`, or the original backend's
 * `authentication: <jwt>` with or without `Bearer `.
 */
export function extractJwt (headers: Record<string, string | string[] | undefined>): string | null {
  for (const name of ['authorization', 'authentication']) {
    const raw = headers[name]
    const value = Array.isArray(raw) ? raw[0] : raw
    if (value === undefined || value.trim() === '') continue
    const match = /^\s*Bearer\s+(\S+)\s*$/i.exec(value)
    if (match !== null) return match[1] as string
    if (name === 'authentication' && /^\S+$/.test(value.trim())) return value.trim()
  }
  return null
}
