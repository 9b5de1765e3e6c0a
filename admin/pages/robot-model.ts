// A robot's model on its admin page (docs/admin.md, docs/protocol.md §14):
// the latest values of its telemetry fields, with units, and a form per
// model command built from the command's parameter schema. A form's values
// are text; they become typed parameters here, by the same schema, and the
// model's compiled check names each mistake next to its field. Pure: no I/O.
import type { FieldDeclaration, JsonSchema, ModelDefinition } from '../../src/contract/models.js'

/** The value of a telemetry field as the page shows it: numbers with fixed decimals, yes/no for booleans. */
export function modelValue (decl: Pick<FieldDeclaration, 'type'> | undefined, value: unknown): string {
  if (value === undefined || value === null) return '—'
  if (typeof value === 'boolean') return value ? 'yes' : 'no'
  if (typeof value === 'number' && Number.isFinite(value)) {
    if (Math.abs(value) >= 1e9) return value.toExponential(3).replace('e+', 'e')
    const text = value.toFixed(decl?.type === 'integer' ? 0 : 2)
    return /^-0(\.0*)?$/.test(text) ? text.slice(1) : text
  }
  return typeof value === 'string' ? value : JSON.stringify(value)
}

/** One reading of the model's panel: the field, its unit, its value in the last stored type-4 frame. */
export interface ModelReading { key: string, type: string, unit: string, description: string, value: string, exact: string }

export function modelReadings (definition: Pick<ModelDefinition, 'telemetry'>, last: Record<string, unknown> | undefined): ModelReading[] {
  return Object.entries(definition.telemetry).map(([key, decl]) => {
    const v = last?.[key]
    return { key, type: decl.type, unit: decl.unit ?? '', description: decl.description ?? '', value: modelValue(decl, v), exact: v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v) }
  })
}

export type InputKind = 'select' | 'checkbox' | 'number' | 'text' | 'json'

/** One input of a command form: a property of the command's parameters. */
export interface ParamInput {
  /** the property's name */
  name: string
  /** the form field's name: `p.` and the property's name */
  field: string
  id: string
  kind: InputKind
  required: boolean
  hint: string
  options: Array<{ value: string, label: string }>
  min?: number
  max?: number
  step?: string
  maxlength?: number
  /** what the field holds: the user's text after a refused post */
  value: string
  checked: boolean
  error: string
}

/** A model command's form on the robot page. */
export interface CommandForm {
  name: string
  description: string
  timeout: number | null
  /** true when the command declares parameters (an empty object still sends `{}`) */
  takesParams: boolean
  inputs: ParamInput[]
  /** the command's errors that belong to no one field */
  errors: string[]
  ttl: string
}

/** A refused post of a model command: the command, the user's values, the errors. */
export interface CommandFormState { command: string, values: Record<string, string>, errors: string[], ttl: string }

const FIELD_PREFIX = 'p.'

function typesOf (schema: JsonSchema): string[] {
  const type = schema.type
  return Array.isArray(type) ? type.map(String) : typeof type === 'string' ? [type] : []
}

function kindOf (schema: JsonSchema): InputKind {
  if (Array.isArray(schema.enum)) return 'select'
  const types = typesOf(schema)
  if (types.length !== 1) return 'json'
  switch (types[0]) {
    case 'boolean': return 'checkbox'
    case 'integer': case 'number': return 'number'
    case 'string': return 'text'
    default: return 'json'
  }
}

function hintOf (schema: JsonSchema, kind: InputKind): string {
  const parts: string[] = []
  if (typeof schema.description === 'string') parts.push(schema.description)
  const types = typesOf(schema)
  if (kind === 'json') parts.push(`JSON${types.length > 0 ? ` (${types.join(' or ')})` : ''}`)
  if (kind === 'number' && typesOf(schema)[0] === 'integer') parts.push('a whole number')
  if (typeof schema.minimum === 'number' && typeof schema.maximum === 'number') parts.push(`${schema.minimum} to ${schema.maximum}`)
  else if (typeof schema.minimum === 'number') parts.push(`at least ${schema.minimum}`)
  else if (typeof schema.maximum === 'number') parts.push(`at most ${schema.maximum}`)
  if (typeof schema.minLength === 'number' && schema.minLength > 1) parts.push(`at least ${schema.minLength} characters`)
  if (typeof schema.maxLength === 'number') parts.push(`at most ${schema.maxLength} characters`)
  return parts.join('; ')
}

const propertiesOf = (params: JsonSchema | undefined): Array<[string, JsonSchema]> =>
  Object.entries((params?.properties ?? {}) as Record<string, JsonSchema>).filter(([, s]) => s !== null && typeof s === 'object')

const requiredOf = (params: JsonSchema | undefined): string[] =>
  Array.isArray(params?.required) ? (params.required as unknown[]).filter((r): r is string => typeof r === 'string') : []

/** The error of `messages` that names the property `name` (`params.name …`), if any. */
function errorFor (messages: readonly string[], name: string): string {
  return messages.find((m) => m.startsWith(`params.${name} `) || m.startsWith(`params.${name}.`)) ?? ''
}

/** The forms of every command of a model, with a refused post's values and errors in its own form. */
export function commandForms (definition: Pick<ModelDefinition, 'commands'>, state?: CommandFormState): CommandForm[] {
  return Object.entries(definition.commands).map(([name, decl], c) => {
    const mine = state?.command === name ? state : undefined
    const required = requiredOf(decl.params)
    const props = propertiesOf(decl.params)
    const inputs = props.map(([prop, schema], i): ParamInput => {
      const kind = kindOf(schema)
      const field = `${FIELD_PREFIX}${prop}`
      const isRequired = required.includes(prop)
      const input: ParamInput = {
        name: prop,
        field,
        id: `f-mc${c}-${i}`,
        kind,
        required: isRequired,
        hint: hintOf(schema, kind),
        options: [],
        value: mine?.values[field] ?? '',
        checked: mine !== undefined && Object.hasOwn(mine.values, field),
        error: mine === undefined ? '' : errorFor(mine.errors, prop)
      }
      if (kind === 'select') {
        // the option values are indexes into the enum: an enum may hold numbers, booleans and null
        input.options = (schema.enum as unknown[]).map((v, k) => ({ value: String(k), label: typeof v === 'string' ? v : JSON.stringify(v) }))
      } else if (kind === 'number') {
        if (typeof schema.minimum === 'number') input.min = schema.minimum
        if (typeof schema.maximum === 'number') input.max = schema.maximum
        input.step = typesOf(schema)[0] === 'integer' ? '1' : 'any'
      } else if (kind === 'text' && typeof schema.maxLength === 'number') {
        input.maxlength = schema.maxLength
      }
      return input
    })
    const placed = new Set(inputs.map((i) => i.error).filter((e) => e !== ''))
    return {
      name,
      description: decl.description ?? '',
      timeout: decl.timeout ?? null,
      takesParams: decl.params !== undefined,
      inputs,
      errors: mine === undefined ? [] : mine.errors.filter((e) => !placed.has(e)),
      ttl: mine?.ttl ?? ''
    }
  })
}

/** The form's text fields of the command's parameters (`p.…`), as typed: what a refused post shows again. */
export function formValues (body: unknown): Record<string, string> {
  const values: Record<string, string> = {}
  if (body === null || typeof body !== 'object') return values
  for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
    if (k.startsWith(FIELD_PREFIX) && typeof v === 'string') values[k] = v.slice(0, 10_000)
  }
  return values
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/

/**
 * The typed parameters of a command from its form's values, by its schema:
 * an enum's option index becomes its value, a checkbox true or false, a
 * number input a number, a text its string, a JSON field its parsed value;
 * an empty field is left out (the schema's `required` then names it).
 * Errors name the field as the model's own check does (`params.passes …`).
 */
export function paramsFrom (params: JsonSchema | undefined, values: Record<string, string>): { params: Record<string, unknown> | undefined, errors: string[] } {
  if (params === undefined) return { params: undefined, errors: [] }
  const out: Record<string, unknown> = {}
  const errors: string[] = []
  for (const [prop, schema] of propertiesOf(params)) {
    const raw = values[`${FIELD_PREFIX}${prop}`]
    const kind = kindOf(schema)
    if (kind === 'checkbox') { out[prop] = raw !== undefined; continue }
    if (raw === undefined || raw.trim() === '') continue
    const at = `params.${prop}`
    switch (kind) {
      case 'select': {
        const options = schema.enum as unknown[]
        const k = /^\d{1,4}$/.test(raw) ? Number(raw) : -1
        if (k >= 0 && k < options.length) out[prop] = options[k]
        else errors.push(`${at} must be one of the listed values`)
        break
      }
      case 'number': {
        const n = NUMBER.test(raw.trim()) ? Number(raw.trim()) : NaN
        if (Number.isFinite(n)) out[prop] = n
        else errors.push(`${at} must be a number`)
        break
      }
      case 'text':
        out[prop] = raw
        break
      default:
        try {
          out[prop] = JSON.parse(raw)
        } catch {
          errors.push(`${at} must be JSON (a quoted string, a number, true, false, null, […] or {…})`)
        }
    }
  }
  return { params: out, errors }
}
