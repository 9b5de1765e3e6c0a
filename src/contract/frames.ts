// Data frames (docs/protocol.md §4): one JSON schema per frame type, compiled once,
// and errors a firmware developer can read in the ack. Pure: no I/O.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { Type, type TSchema } from 'typebox'
import type { CompiledModel } from './models.js'
import { FRAME_TYPES } from './payloads.js'

const FRAME_NAMES: Record<number, string> = { 1: 'position', 2: 'geo', 3: 'hardware', 4: 'telemetry' }

// JSON.parse turns 1e400 into Infinity; these bounds keep numbers finite.
const finite = (opts: { minimum?: number, maximum?: number, description?: string } = {}): TSchema =>
  Type.Number({ minimum: opts.minimum ?? -Number.MAX_VALUE, maximum: opts.maximum ?? Number.MAX_VALUE, ...(opts.description === undefined ? {} : { description: opts.description }) })

// The accepted date-times as one regular expression, so that the schema a
// standard JSON Schema validator reads (the AsyncAPI document, docs/protocol.md §12) and the
// broker's own check are the same: a real calendar day (leap years too),
// hours 00–23 or 24:00 exactly, an offset of at most ±23:59.
const LEAP_YEAR = '(?:\\d{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)'
const DAY = `(?:\\d{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1\\d|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)|${LEAP_YEAR}-02-29)`
const ORIGINAL_TIME = '(?:(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,6})?|24:00:00(?:\\.0{1,6})?)'
const ISO_TIME = '(?:(?:[01]\\d|2[0-3]):[0-5]\\d(?::[0-5]\\d(?:\\.\\d{1,9})?)?|24:00(?::00(?:\\.0{1,9})?)?)'
const ZONE = '(?:[Zz]|[+-](?:[01]\\d|2[0-3]):?[0-5]\\d)'
/** `YYYY-MM-DD HH:MM:SS` (the original robot's, taken as UTC) or ISO 8601 with a date and a time (no offset: UTC). */
export const DATETIME_PATTERN = `^(?:${DAY} ${ORIGINAL_TIME}|${DAY}[Tt]${ISO_TIME}${ZONE}?)$`
const DATETIME = new RegExp(DATETIME_PATTERN)

const datetime = Type.String({
  pattern: DATETIME_PATTERN,
  maxLength: 64,
  description: 'when the robot measured it: ISO 8601 with a date and a time (`2026-12-04T10:15:30.250Z`; without an offset it is UTC), or `YYYY-MM-DD HH:MM:SS` taken as UTC (what the original robot sends)'
})

const HARDWARE_METRICS = ['battery', 'temperature', 'cpu', 'memory']

/** docs/protocol.md §6.4: the numeric fields of each frame type, in that order (aggregates, CSV export). */
export const NUMERIC_FIELDS: Readonly<Record<number, readonly string[]>> = {
  [FRAME_TYPES.position]: ['speed', 'position_x', 'position_y', 'angle_theta'],
  [FRAME_TYPES.geo]: ['latitude', 'longitude', 'altitude', 'accuracy'],
  [FRAME_TYPES.hardware]: HARDWARE_METRICS
}

const DATA_SCHEMAS: Record<number, TSchema> = {
  [FRAME_TYPES.position]: Type.Object({
    speed: finite({ description: 'm/s' }),
    position_x: finite({ description: 'm' }),
    position_y: finite({ description: 'm' }),
    angle_theta: finite({ description: 'heading, rad' }),
    datetime
  }, { additionalProperties: false }),
  [FRAME_TYPES.geo]: Type.Object({
    latitude: finite({ minimum: -90, maximum: 90, description: 'degrees' }),
    longitude: finite({ minimum: -180, maximum: 180, description: 'degrees' }),
    datetime,
    altitude: Type.Optional(finite({ description: 'm' })),
    accuracy: Type.Optional(finite({ minimum: 0, description: 'm' }))
  }, { additionalProperties: false }),
  [FRAME_TYPES.hardware]: Type.Object({
    datetime,
    battery: Type.Optional(finite({ minimum: 0, maximum: 100, description: '%' })),
    temperature: Type.Optional(finite({ description: '°C' })),
    cpu: Type.Optional(finite({ minimum: 0, maximum: 100, description: '%' })),
    memory: Type.Optional(finite({ minimum: 0, maximum: 100, description: '%' }))
  }, {
    additionalProperties: false,
    // at least one metric
    anyOf: HARDWARE_METRICS.map((m) => ({ required: [m] }))
  })
}
/** A frame id: 1–64 characters, none of them NUL or half a surrogate pair (the database refuses those). */
const FRAME_ID = Type.String({ minLength: 1, maxLength: 64, pattern: '^(?:[^\\u0000\\uD800-\\uDFFF]|[\\uD800-\\uDBFF][\\uDC00-\\uDFFF])*$', description: 'chosen by the robot, unique per robot: a frame resent with a stored id is acked ok and stored once' })

/**
 * The JSON Schema of a data frame, whole: one alternative per type. What the
 * broker checks in two steps (envelope, then the type's data), and what the
 * AsyncAPI document serves (src/contract/asyncapi.ts).
 */
export const FRAME_SCHEMA: TSchema = Type.Union(Object.entries(DATA_SCHEMAS).map(([type, data]) => Type.Object({
  id: FRAME_ID,
  type: Type.Literal(Number(type), { description: FRAME_NAMES[Number(type)] }),
  data
}, { additionalProperties: false, title: `${FRAME_NAMES[Number(type)] as string} frame` })))

/** The instant a frame's `datetime` names, or null when it is not a valid date-time. */
export function parseFrameDatetime (value: string): Date | null {
  const ms = datetimeMs(value)
  return ms === null ? null : new Date(ms)
}

// The last string checked and its instant: ajv's pattern check and
// validateFrame look at the same `datetime` one after the other.
let lastValue: string | undefined
let lastMs: number | null = null

function datetimeMs (value: string): number | null {
  if (value === lastValue) return lastMs
  const ms = DATETIME.test(value) ? instant(value) : null
  lastValue = value
  lastMs = ms
  return ms
}

/** The instant of a string DATETIME matched: read by position, the pattern fixes where each part is. */
function instant (value: string): number {
  const num = (from: number, to: number): number => Number(value.slice(from, to))
  const day = new Date(Date.UTC(2000, num(5, 7) - 1, num(8, 10), num(11, 13), num(14, 16)))
  day.setUTCFullYear(num(0, 4)) // Date.UTC reads years 0–99 as 1900–1999; 2000 is a leap year, so 02-29 stays put
  let at = 16
  let seconds = 0
  let millis = 0
  if (value[at] === ':') {
    seconds = num(at + 1, at + 3)
    at += 3
    if (value[at] === '.') {
      let end = at + 1
      while (end < value.length && value.charCodeAt(end) >= 48 && value.charCodeAt(end) <= 57) end++
      millis = Number(value.slice(at + 1, Math.min(end, at + 4)).padEnd(3, '0'))
      at = end
    }
  }
  let offset = 0 // minutes east of UTC
  const sign = value[at]
  if (sign === '+' || sign === '-') {
    const hh = num(at + 1, at + 3)
    const mm = value[at + 3] === ':' ? num(at + 4, at + 6) : num(at + 3, at + 5)
    offset = (sign === '+' ? 1 : -1) * (hh * 60 + mm)
  }
  return day.getTime() + seconds * 1000 + millis - offset * 60_000
}

const ajv = new Ajv({ allErrors: true, strict: false })

const validateEnvelope = ajv.compile(Type.Object({
  id: FRAME_ID,
  type: Type.Integer({ enum: [1, 2, 3, 4] }),
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

const UNSTORABLE = 'strings may not contain NUL characters (\\u0000) or unpaired surrogates'
const NEEDS_METRIC = `a hardware frame needs at least one of ${HARDWARE_METRICS.join(', ')}`

/** Turns ajv's errors into sentences that name the field. */
function describe (errors: ErrorObject[] | null | undefined, prefix: string, typeName?: string): string[] {
  // The at-least-one-metric rule fails as an anyOf of required fields: one sentence for it.
  return (errors ?? []).filter((e) => !e.schemaPath.includes('/anyOf/')).map((e) => {
    const field = `${prefix}${e.instancePath.replace(/^\//, '').replace(/\//g, '.')}`.replace(/\.$/, '')
    switch (e.keyword) {
      case 'additionalProperties':
        return `${prefix}${(e.params as { additionalProperty: string }).additionalProperty} is not a field of ${typeName === undefined ? 'a frame' : `a ${typeName} frame`}`
      case 'required':
        return `${prefix}${(e.params as { missingProperty: string }).missingProperty} is required`
      case 'anyOf':
        return NEEDS_METRIC
      case 'type':
        return `${field} must be a ${(e.params as { type: string }).type}`
      case 'pattern':
        return field === 'id' ? UNSTORABLE : `${field} must be an ISO 8601 date-time or "YYYY-MM-DD HH:MM:SS"`
      case 'enum':
        return field === 'type' ? 'type must be 1 (position), 2 (geo), 3 (hardware) or 4 (telemetry)' : `${field} must be one of the allowed values`
      case 'minLength': case 'maxLength':
        return field === 'id' ? 'id must be a string of 1 to 64 characters' : `${field} ${e.message ?? 'has a wrong length'}`
      case 'minimum': case 'maximum':
        return `${field} ${e.message ?? 'is out of range'}`
      default:
        return `${field} ${e.message ?? 'is invalid'}`
    }
  })
}

/**
 * Size → parse → envelope → per-type data, cheapest first (docs/protocol.md §4).
 * Never throws: every outcome is a result the broker turns into one ack.
 * The schemas alone decide (FRAME_SCHEMA is the same pieces, whole): every
 * string a valid frame holds is its id or a datetime, and their patterns
 * keep out what the database cannot store (NUL, unpaired surrogates).
 */
export function validateFrame (payload: Buffer, maxBytes: number, model: CompiledModel | null = null): FrameResult {
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
  if (frame.type === FRAME_TYPES.telemetry) {
    // docs/protocol.md §14.2: checked against the robot's model, compiled once per version
    if (model === null) return { ok: false, id: frame.id, errors: ['this robot has no model: type 4 (telemetry) frames need one'] }
    const errors = model.checkData(frame.data)
    if (errors !== null) return { ok: false, id: frame.id, errors: capped(errors) }
    return { ok: true, frame: { id: frame.id, type: frame.type, data: frame.data, recordedAt: new Date(datetimeMs(frame.data.datetime as string) as number), text } }
  }
  const validate = validators[frame.type] as ValidateFunction
  const typeName = FRAME_NAMES[frame.type]
  if (!validate(frame.data)) return { ok: false, id: frame.id, errors: capped(describe(validate.errors, 'data.', typeName)) }
  return { ok: true, frame: { id: frame.id, type: frame.type, data: frame.data, recordedAt: new Date(datetimeMs(frame.data.datetime as string) as number), text } }
}
