// Robot uuids and command ids (docs/protocol.md §3, §5): UUIDs in the canonical,
// lower-case form that United issues them in.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export function isUuid (value: string): boolean {
  return UUID.test(value)
}
