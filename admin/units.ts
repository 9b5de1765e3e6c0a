// The numbers of a robot's frames as people read them: each field's unit (as
// the frame schemas describe it, src/contract/frames.ts) and a fixed number of
// decimals, so that a column of values lines up and never wraps mid-number.
// The same table is handed to the browser (live.js, fleet.js) as JSON, so a
// value reads the same in the stored table, the live panel and the fleet.
import { NUMERIC_FIELDS } from '../src/contract/frames.js'

export interface FieldFormat { label: string, unit: string, decimals: number }

export const FIELDS: Readonly<Record<string, FieldFormat>> = {
  speed: { label: 'Speed', unit: 'm/s', decimals: 2 },
  position_x: { label: 'x', unit: 'm', decimals: 2 },
  position_y: { label: 'y', unit: 'm', decimals: 2 },
  angle_theta: { label: 'θ', unit: 'rad', decimals: 3 },
  latitude: { label: 'Latitude', unit: '°', decimals: 6 },
  longitude: { label: 'Longitude', unit: '°', decimals: 6 },
  altitude: { label: 'Altitude', unit: 'm', decimals: 1 },
  accuracy: { label: 'Accuracy', unit: 'm', decimals: 1 },
  battery: { label: 'Battery', unit: '%', decimals: 1 },
  temperature: { label: 'Temperature', unit: '°C', decimals: 1 },
  cpu: { label: 'CPU', unit: '%', decimals: 1 },
  memory: { label: 'Memory', unit: '%', decimals: 1 }
}

/** The fields in the contract's order: position, geo, hardware. */
export const FIELD_ORDER: readonly string[] = Object.values(NUMERIC_FIELDS).flat()

/** From this magnitude on, a value is written `1.370e12`: a fixed form would be a dozen digits or more. */
const EXPONENT_FROM = 1e9

/**
 * A number with the field's decimals: "1.50", "-0.25", never "-0.00"; a huge
 * one (a glitching sensor's 1.37e12) as "1.370e12". Anything that is not a
 * finite number is written as it came (the stored JSON), so nothing is hidden.
 */
export function fixed (value: unknown, decimals: number): string {
  if (typeof value !== 'number' || !Number.isFinite(value)) return typeof value === 'string' ? value : JSON.stringify(value) ?? ''
  if (Math.abs(value) >= EXPONENT_FROM) return value.toExponential(3).replace('e+', 'e')
  const text = value.toFixed(decimals)
  return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text
}

/** "Speed (m/s)". */
export const heading = (f: FieldFormat): string => `${f.label} (${f.unit})`

export interface FrameColumn { key: string, heading: string }
export interface FrameCell { text: string, exact: string }
export interface FrameRow {
  received_at: string
  recorded_at: string | null
  type: number
  frame_id: string
  /** one per column, '' where the frame has no such field */
  cells: FrameCell[]
  /** fields not in the table ("key=value"), should a frame ever hold one */
  other: string
}

/**
 * A page of stored frames as a table: a column for each known field that
 * one of them holds (position, geo, hardware, in the contract's order), its
 * unit in the heading, its values with fixed decimals; `exact` is the stored
 * value in full, for the cell's title.
 */
export function frameTable (items: ReadonlyArray<{ frame_id: string, type: number, data: Record<string, unknown>, recorded_at: string | null, received_at: string }>): { columns: FrameColumn[], rows: FrameRow[], other: boolean } {
  const present = new Set<string>()
  for (const f of items) for (const k of Object.keys(f.data)) present.add(k)
  const keys = FIELD_ORDER.filter((k) => present.has(k))
  const rows = items.map((f) => ({
    received_at: f.received_at,
    recorded_at: f.recorded_at,
    type: f.type,
    frame_id: f.frame_id,
    cells: keys.map((k) => {
      if (!Object.hasOwn(f.data, k)) return { text: '', exact: '' }
      const v = f.data[k]
      return { text: fixed(v, (FIELDS[k] as FieldFormat).decimals), exact: typeof v === 'number' ? String(v) : JSON.stringify(v) ?? '' }
    }),
    other: Object.entries(f.data)
      .filter(([k]) => k !== 'datetime' && !keys.includes(k))
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join('  ')
  }))
  return {
    columns: keys.map((k) => ({ key: k, heading: heading(FIELDS[k] as FieldFormat) })),
    rows,
    other: rows.some((r) => r.other !== '')
  }
}
