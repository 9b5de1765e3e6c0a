// Data frames (CONTRACT §4): one JSON schema per frame type, compiled once,
// and errors a firmware developer can read in the ack. Pure: no I/O.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { Type, type TSchema } from 'typebox'
import { FRAME_TYPES } from './payloads.js'

const FRAME_NAMES: Record<number, string> = { 1: 'position', 2: 'geo', 3: 'hardware' }

// JSON.parse turns 1e400 into Infinity; these bounds keep numbers finite.
const finite = (opts: { minimum?: number, maximum?: number } = {}): TSchema =>
  Type.Number({ minimum: opts.minimum ?? -Number.MAX_VALUE, maximum: opts.maximum ?? Number.MAX_VALUE })
const datetime = Type.String({ format: 'frame-datetime', maxLength: 64 })

const DATA_SCHEMAS: Record<number, TSchema> = {
  [FRAME_TYPES.position]: Type.Object({
    speed: finite(),
    position_x: finite(),
    position_y: finite(),
    angle_theta: finite(),
    datetime
  }, { additionalProperties: false }),
  [FRAME_TYPES.geo]: Type.Object({
    latitude: finite({ minimum: -90, maximum: 90 }),
    longitude: finite({ minimum: -180, maximum: 180 }),
    datetime,
    altitude: Type.Optional(finite()),
    accuracy: Type.Optional(finite({ minimum: 0 }))
  }, { additionalProperties: false }),
  [FRAME_TYPES.hardware]: Type.Object({
    datetime,
    battery: Type.Optional(finite({ minimum: 0, maximum: 100 })),
    temperature: Type.Optional(finite()),
    cpu: Type.Optional(finite({ minimum: 0, maximum: 100 })),
    memory: Type.Optional(finite({ minimum: 0, maximum: 100 }))
  }, { additionalProperties: false })
}
const HARDWARE_METRICS = ['battery', 'temperature', 'cpu', 'memory']

/** `YYYY-MM-DD HH:MM:SS` (the original robot's, taken as UTC) or ISO 8601 with a date and time. */
const ORIGINAL_DATETIME = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)$/
const ISO_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?$/i

const ZONE = /(?:Z|[+-]\d{2}:?\d{2})$/i
const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/** The instant a frame's `datetime` names, or null when it is not a valid date-time. */
export function parseFrameDatetime (value: string): Date | null {
  const ms = datetimeMs(value)
  return ms === null ? null : new Date(ms)
}

// The last string checked and its instant: ajv's format check and
// validateFrame look at the same `datetime` one after the other.
let lastValue: string | undefined
let lastMs: number | null = null

function datetimeMs (value: string): number | null {
  if (value === lastValue) return lastMs
  const ms = computeDatetimeMs(value)
  lastValue = value
  lastMs = ms
  return ms
}

function computeDatetimeMs (value: string): number | null {
  const original = ORIGINAL_DATETIME.exec(value)
  const iso = original !== null ? `${original[1] as string}T${original[2] as string}Z` : value
  if (original === null && !ISO_DATETIME.test(value)) return null
  // A date-time without an offset is taken as UTC, like the original robot's.
  const withZone = original !== null || ZONE.test(iso) ? iso : `${iso}Z`
  const ms = Date.parse(withZone)
  if (Number.isNaN(ms)) return null
  // Date.parse rolls a day the month does not have (2024-02-30) over into the next month.
  const y = Number(value.slice(0, 4))
  const m = Number(value.slice(5, 7))
  const d = Number(value.slice(8, 10))
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
  const days = m === 2 && leap ? 29 : (DAYS_IN_MONTH[m - 1] as number)
  return d >= 1 && d <= days ? ms : null
}

const ajv = new Ajv({ allErrors: true, strict: false })
ajv.addFormat('frame-datetime', { type: 'string', validate: (s: string) => datetimeMs(s) !== null })

const validateEnvelope = ajv.compile(Type.Object({
  id: Type.String({ minLength: 1, maxLength: 64 }),
  type: Type.Integer({ enum: [1, 2, 3] }),
  data: Type.Object({})
}, { additionalProperties: false }))
const validators: Record<number, ValidateFunction> = Object.fromEntries(
  Object.entries(DATA_SCHEMAS).map(([type, schema]) => [type, ajv.compile(schema)])
)

export interface Frame {
  id: string
  type: number
  data: Record<string, unknown>
  recordedAt: Date
  /** The frame's JSON text as the robot sent it: what id, type and data were read from. */
  text: string
}
export type FrameResult =
  | { ok: true, frame: Frame }
  | { ok: false, id: string | null, errors: string[] }

/** At most this many errors per ack, so that an ack stays small whatever the frame held. */
export const MAX_ERRORS = 20

function capped (errors: string[]): string[] {
  return errors.length <= MAX_ERRORS ? errors : [...errors.slice(0, MAX_ERRORS), `and ${errors.length - MAX_ERRORS} more errors`]
}

/** Turns ajv's errors into sentences that name the field. */
function describe (errors: ErrorObject[] | null | undefined, prefix: string, typeName?: string): string[] {
  return (errors ?? []).map((e) => {
    const field = `${prefix}${e.instancePath.replace(/^\//, '').replace(/\//g, '.')}`.replace(/\.$/, '')
    switch (e.keyword) {
      case 'additionalProperties':
        return `${prefix}${(e.params as { additionalProperty: string }).additionalProperty} is not a field of ${typeName === undefined ? 'a frame' : `a ${typeName} frame`}`
      case 'required':
        return `${prefix}${(e.params as { missingProperty: string }).missingProperty} is required`
      case 'type':
        return `${field} must be a ${(e.params as { type: string }).type}`
      case 'format':
        return `${field} must be an ISO 8601 date-time or "YYYY-MM-DD HH:MM:SS"`
      case 'enum':
        return field === 'type' ? 'type must be 1 (position), 2 (geo) or 3 (hardware)' : `${field} must be one of the allowed values`
      case 'minLength': case 'maxLength':
        return field === 'id' ? 'id must be a string of 1 to 64 characters' : `${field} ${e.message ?? 'has a wrong length'}`
      case 'minimum': case 'maximum':
        return `${field} ${e.message ?? 'is out of range'}`
      default:
        return `${field} ${e.message ?? 'is invalid'}`
    }
  })
}

const UNPAIRED = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const UNSTORABLE = 'strings may not contain NUL characters (\\u0000) or unpaired surrogates'

/**
 * Whether every string in a parsed JSON value (keys too) can be stored: the
 * database's text and JSON types refuse NUL and unpaired UTF-16 surrogates,
 * and one such frame would fail the whole batch it is written with.
 */
export function storable (value: unknown): boolean {
  const stack: unknown[] = [value] // iterative: a deeply nested frame cannot overflow the call stack
  while (stack.length > 0) {
    const v = stack.pop()
    if (typeof v === 'string') {
      if (v.includes('\0') || UNPAIRED.test(v)) return false
    } else if (Array.isArray(v)) {
      for (const x of v) stack.push(x)
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) stack.push(k, x)
    }
  }
  return true
}

/**
 * Size → parse → envelope → per-type data, cheapest first (CONTRACT §4).
 * Never throws: every outcome is a result the broker turns into one ack.
 */
export function validateFrame (payload: Buffer, maxBytes: number): FrameResult {
  if (payload.length > maxBytes) return { ok: false, id: null, errors: [`frame is ${payload.length} bytes, over the limit of ${maxBytes}`] }
  let value: unknown
  const text = payload.toString('utf8')
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, id: null, errors: ['payload is not valid JSON'] }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { ok: false, id: null, errors: ['frame must be a JSON object with id, type and data'] }
  }
  const raw = value as { id?: unknown, type?: unknown, data?: unknown }
  const id = typeof raw.id === 'string' && raw.id.length >= 1 && raw.id.length <= 64 ? raw.id : null
  if (!validateEnvelope(value)) {
    return { ok: false, id, errors: capped([...new Set(describe(validateEnvelope.errors, ''))]) }
  }
  const frame = value as { id: string, type: number, data: Record<string, unknown> }
  const validate = validators[frame.type] as ValidateFunction
  const typeName = FRAME_NAMES[frame.type]
  const errors = validate(frame.data) ? [] : describe(validate.errors, 'data.', typeName)
  if (frame.type === FRAME_TYPES.hardware && !HARDWARE_METRICS.some((m) => m in frame.data)) {
    errors.push(`a hardware frame needs at least one of ${HARDWARE_METRICS.join(', ')}`)
  }
  if (errors.length > 0) return { ok: false, id: frame.id, errors: capped(errors) }
  // NUL and unpaired surrogates can only arrive as \u escapes: look only then.
  if (text.includes('\\u') && !storable(frame)) return { ok: false, id: frame.id, errors: [UNSTORABLE] }
  return { ok: true, frame: { id: frame.id, type: frame.type, data: frame.data, recordedAt: new Date(datetimeMs(frame.data.datetime as string) as number), text } }
}
