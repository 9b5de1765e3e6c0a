// Small pure helpers for the views. Everything they return is text that the
// templates still escape with <%= %>; none of them builds HTML.

/** "2026-11-24 09:41:07 UTC" from an ISO string; "—" for none. */
function time (iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return '—'
  return iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')
}

/** "3 s ago", "5 min ago", … for a past ISO time; "never" for none. */
function ago (iso: string | null | undefined, now = Date.now()): string {
  if (iso === null || iso === undefined) return 'never'
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.floor(s / 60)} min ago`
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`
  return `${Math.floor(s / 86400)} d ago`
}

/** A query string ("?a=1&b=x%20y") from the defined, non-empty values. */
function qs (params: Record<string, string | number | boolean | null | undefined>): string {
  const search = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') search.set(k, String(v))
  }
  const s = search.toString()
  return s === '' ? '' : `?${s}`
}

/** A frame's data as "key=value" pairs, in a stable order. */
function pairs (data: Record<string, unknown> | null | undefined): string {
  if (data === null || data === undefined) return ''
  return Object.entries(data).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join('  ')
}

/** "30 s", "10 min", "1 h" for a whole number of seconds. */
function seconds (s: number): string {
  if (s % 3600 === 0) return `${s / 3600} h`
  if (s % 60 === 0) return `${s / 60} min`
  return `${s} s`
}

const FRAME_TYPES: Record<number, string> = { 1: 'position', 2: 'geo', 3: 'hardware', 4: 'telemetry' }

export const helpers = {
  time,
  ago,
  qs,
  pairs,
  seconds,
  json: (value: unknown): string => JSON.stringify(value),
  frameType: (type: number): string => FRAME_TYPES[type] ?? String(type)
}
