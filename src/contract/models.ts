// Robot models (docs/protocol.md §14): what a kind of robot reports (telemetry
// fields) and what it can be told (commands with a JSON Schema of their
// parameters). Pure: no I/O.
//
// A model comes from staff, but it is treated as hostile input all the same:
// its parameter schemas may use only a whitelist of keywords (no `$ref`, so
// no remote or recursive schemas; no `pattern`, so no regular expression of
// anyone's choosing), every count and size is bounded, and each version is
// compiled once into the validators the broker and the command endpoint run.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { DATETIME_PATTERN } from './frames.js'
import { ROBOT_COMMANDS } from './payloads.js'

export const MODEL_NAME_PATTERN = '^[a-z][a-z0-9_-]{0,63}$'
export const FIELD_NAME_PATTERN = '^[a-z][a-z0-9_]{0,63}$'
const MODEL_NAME = new RegExp(MODEL_NAME_PATTERN)
const FIELD_NAME = new RegExp(FIELD_NAME_PATTERN)

/** A model's JSON text (name, description, telemetry and commands) may be this long at most. */
export const MAX_MODEL_BYTES = 65_536
export const MAX_FIELDS = 64
export const MAX_COMMANDS = 64
/** The longest string value a telemetry field may declare, and its default. */
export const MAX_STRING_LENGTH = 256
export const MAX_TIMEOUT_SECONDS = 86_400
/** The largest `result` a robot's ack may carry, in bytes of JSON. */
export const MAX_RESULT_BYTES = 8192
const MAX_DESCRIPTION = 1000
const MAX_UNIT = 32
const MAX_ENUM = 256
/** How deep a parameter schema may nest (objects in arrays in objects …). */
const MAX_DEPTH = 8
const MAX_PROPERTIES = 64

/** Keys `stats` sets itself (docs/protocol.md §6.2), and the frame's own time: not field names. */
export const RESERVED_FIELDS: readonly string[] = ['datetime', 'robot_uuid', 'state', 'data_connected', 'command_connected']
export const FIELD_TYPES = ['number', 'integer', 'boolean', 'string'] as const
export type FieldType = typeof FIELD_TYPES[number]

/** The parameter schema keywords a model may use, and nothing else. */
export const SCHEMA_KEYWORDS: readonly string[] = ['type', 'properties', 'required', 'additionalProperties', 'enum', 'minimum', 'maximum', 'minLength', 'maxLength', 'items', 'minItems', 'maxItems', 'description']
const SCHEMA_TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']

export interface FieldDeclaration {
  type: FieldType
  minimum?: number
  maximum?: number
  enum?: string[]
  max_length?: number
  unit?: string
  description?: string
}
export type JsonSchema = Record<string, unknown>
export interface CommandDeclaration {
  description?: string
  params?: JsonSchema
  timeout?: number
}
export interface ModelDefinition {
  name: string
  description?: string
  telemetry: Record<string, FieldDeclaration>
  commands: Record<string, CommandDeclaration>
}
export interface ModelRef { name: string, version: number }

export type ModelCheck = { ok: true, model: ModelDefinition } | { ok: false, errors: string[] }

/** A JSON object: not null, not an array. */
export const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v)
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0
const listOf = (values: readonly string[]): string => values.map((v) => JSON.stringify(v)).join(', ')

function checkText (errors: string[], at: string, value: unknown, max: number): void {
  if (value === undefined) return
  if (typeof value !== 'string') errors.push(`${at} must be a string`)
  else if (value.length > max) errors.push(`${at} must be at most ${max} characters`)
}

function unknownKeys (errors: string[], at: string, value: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) errors.push(`${at === '' ? '' : `${at}.`}${key} is not allowed in ${what} (allowed: ${allowed.join(', ')})`)
  }
}

function checkField (errors: string[], at: string, decl: unknown): void {
  if (!isObject(decl)) { errors.push(`${at} must be an object with a "type"`); return }
  unknownKeys(errors, at, decl, ['type', 'minimum', 'maximum', 'enum', 'max_length', 'unit', 'description'], 'a telemetry field')
  const type = decl.type
  if (!FIELD_TYPES.includes(type as FieldType)) {
    errors.push(`${at}.type must be one of ${listOf(FIELD_TYPES)}`)
    return
  }
  const numeric = type === 'number' || type === 'integer'
  for (const bound of ['minimum', 'maximum'] as const) {
    if (decl[bound] === undefined) continue
    if (!numeric) errors.push(`${at}.${bound} is only for number and integer fields`)
    else if (!isFiniteNumber(decl[bound])) errors.push(`${at}.${bound} must be a finite number`)
  }
  if (isFiniteNumber(decl.minimum) && isFiniteNumber(decl.maximum) && decl.minimum > decl.maximum) errors.push(`${at}.minimum must not be greater than its maximum`)
  if (decl.max_length !== undefined) {
    if (type !== 'string') errors.push(`${at}.max_length is only for string fields`)
    else if (!Number.isSafeInteger(decl.max_length) || (decl.max_length as number) < 1 || (decl.max_length as number) > MAX_STRING_LENGTH) errors.push(`${at}.max_length must be an integer from 1 to ${MAX_STRING_LENGTH}`)
  }
  if (decl.enum !== undefined) {
    const maxLength = Number.isSafeInteger(decl.max_length) ? decl.max_length as number : MAX_STRING_LENGTH
    if (type !== 'string') errors.push(`${at}.enum is only for string fields`)
    else if (!Array.isArray(decl.enum) || decl.enum.length === 0 || decl.enum.length > MAX_ENUM) errors.push(`${at}.enum must be a list of 1 to ${MAX_ENUM} strings`)
    else if (!decl.enum.every((v) => typeof v === 'string' && v.length <= maxLength)) errors.push(`${at}.enum must hold strings of at most ${maxLength} characters`)
    else if (new Set(decl.enum).size !== decl.enum.length) errors.push(`${at}.enum must not repeat a value`)
  }
  checkText(errors, `${at}.unit`, decl.unit, MAX_UNIT)
  checkText(errors, `${at}.description`, decl.description, MAX_DESCRIPTION)
}

/** Checks one parameter schema node against the whitelist; `depth` 0 is the command's `params`. */
function checkSchema (errors: string[], at: string, schema: unknown, depth: number): void {
  if (!isObject(schema)) { errors.push(`${at} must be a JSON Schema object`); return }
  if (depth > MAX_DEPTH) { errors.push(`${at} nests deeper than ${MAX_DEPTH} levels`); return }
  for (const key of Object.keys(schema)) {
    if (!SCHEMA_KEYWORDS.includes(key)) errors.push(`${at}.${key}: the keyword ${JSON.stringify(key)} is not allowed in a parameter schema (allowed: ${SCHEMA_KEYWORDS.join(', ')})`)
  }
  const type = schema.type
  if (type !== undefined) {
    const types = Array.isArray(type) ? type : [type]
    if (types.length === 0 || !types.every((t) => typeof t === 'string' && SCHEMA_TYPES.includes(t)) || new Set(types).size !== types.length) {
      errors.push(`${at}.type must be one of ${listOf(SCHEMA_TYPES)}, or a list of them`)
    }
  }
  if (depth === 0 && type !== 'object') errors.push(`${at}.type must be "object": a command's parameters are an object`)
  if (schema.properties !== undefined) {
    if (!isObject(schema.properties)) errors.push(`${at}.properties must be an object`)
    else {
      const names = Object.keys(schema.properties)
      if (names.length > MAX_PROPERTIES) errors.push(`${at}.properties may name at most ${MAX_PROPERTIES} properties`)
      for (const name of names) {
        if (name.length === 0 || name.length > 64) errors.push(`${at}.properties: a property name must be 1 to 64 characters`)
        else checkSchema(errors, `${at}.properties.${name}`, schema.properties[name], depth + 1)
      }
    }
  }
  if (schema.required !== undefined) {
    const required = schema.required
    if (!Array.isArray(required) || !required.every((r) => typeof r === 'string') || new Set(required).size !== required.length || required.length > MAX_PROPERTIES) {
      errors.push(`${at}.required must be a list of distinct property names`)
    }
  }
  if (schema.additionalProperties !== undefined && typeof schema.additionalProperties !== 'boolean') {
    checkSchema(errors, `${at}.additionalProperties`, schema.additionalProperties, depth + 1)
  }
  if (schema.items !== undefined) checkSchema(errors, `${at}.items`, schema.items, depth + 1)
  if (schema.enum !== undefined) {
    const values = schema.enum
    if (!Array.isArray(values) || values.length === 0 || values.length > MAX_ENUM) errors.push(`${at}.enum must be a list of 1 to ${MAX_ENUM} values`)
    else if (!values.every((v) => v === null || ['string', 'boolean'].includes(typeof v) || isFiniteNumber(v))) errors.push(`${at}.enum may hold only strings, numbers, booleans and null`)
  }
  for (const bound of ['minimum', 'maximum'] as const) {
    if (schema[bound] !== undefined && !isFiniteNumber(schema[bound])) errors.push(`${at}.${bound} must be a finite number`)
  }
  for (const count of ['minLength', 'maxLength', 'minItems', 'maxItems'] as const) {
    if (schema[count] !== undefined && !isCount(schema[count])) errors.push(`${at}.${count} must be a non-negative integer`)
  }
  checkText(errors, `${at}.description`, schema.description, MAX_DESCRIPTION)
}

function checkCommand (errors: string[], at: string, decl: unknown): void {
  if (!isObject(decl)) { errors.push(`${at} must be an object`); return }
  unknownKeys(errors, at, decl, ['description', 'params', 'timeout'], 'a command')
  checkText(errors, `${at}.description`, decl.description, MAX_DESCRIPTION)
  if (decl.params !== undefined) checkSchema(errors, `${at}.params`, decl.params, 0)
  if (decl.timeout !== undefined && (!Number.isSafeInteger(decl.timeout) || (decl.timeout as number) < 1 || (decl.timeout as number) > MAX_TIMEOUT_SECONDS)) {
    errors.push(`${at}.timeout must be a whole number of seconds from 1 to ${MAX_TIMEOUT_SECONDS}`)
  }
}

function checkNames (errors: string[], at: string, map: Record<string, unknown>, max: number, reserved: readonly string[], what: string): void {
  const names = Object.keys(map)
  if (names.length > max) errors.push(`${at} may declare at most ${max} ${what}s`)
  for (const name of names) {
    if (!FIELD_NAME.test(name)) errors.push(`${at}: ${JSON.stringify(name.slice(0, 80))} is not a valid ${what} name (${FIELD_NAME_PATTERN})`)
    else if (reserved.includes(name)) errors.push(`${at}: ${JSON.stringify(name)} is reserved and cannot be a ${what} name`)
  }
}

/**
 * Checks a model as posted: every mistake, each naming where it is. A valid
 * one comes back with only the keys the model has (nothing unknown survives).
 */
export function checkModel (body: unknown): ModelCheck {
  if (!isObject(body)) return { ok: false, errors: ['a model must be a JSON object with name, telemetry and commands'] }
  const bytes = Buffer.byteLength(JSON.stringify(body))
  if (bytes > MAX_MODEL_BYTES) return { ok: false, errors: [`the model is ${bytes} bytes of JSON, over the limit of ${MAX_MODEL_BYTES}`] }
  const errors: string[] = []
  unknownKeys(errors, '', body, ['name', 'description', 'telemetry', 'commands'], 'a model')
  if (typeof body.name !== 'string' || !MODEL_NAME.test(body.name)) errors.push(`name must match ${MODEL_NAME_PATTERN}`)
  checkText(errors, 'description', body.description, MAX_DESCRIPTION)
  if (!isObject(body.telemetry)) errors.push('telemetry must be an object of field declarations ({} for none)')
  else {
    checkNames(errors, 'telemetry', body.telemetry, MAX_FIELDS, RESERVED_FIELDS, 'field')
    for (const [field, decl] of Object.entries(body.telemetry)) if (FIELD_NAME.test(field)) checkField(errors, `telemetry.${field}`, decl)
  }
  if (!isObject(body.commands)) errors.push('commands must be an object of command declarations ({} for none)')
  else {
    checkNames(errors, 'commands', body.commands, MAX_COMMANDS, ROBOT_COMMANDS, 'command')
    for (const [command, decl] of Object.entries(body.commands)) if (FIELD_NAME.test(command)) checkCommand(errors, `commands.${command}`, decl)
  }
  if (errors.length > 0) return { ok: false, errors }
  const model: ModelDefinition = { name: body.name as string, telemetry: body.telemetry as ModelDefinition['telemetry'], commands: body.commands as ModelDefinition['commands'] }
  if (body.description !== undefined) model.description = body.description as string
  return { ok: true, model }
}

// Strings the database can store: no NUL, no half of a surrogate pair.
const STORABLE = '^(?:[^\\u0000\\uD800-\\uDFFF]|[\\uD800-\\uDBFF][\\uDC00-\\uDFFF])*$'

/** The JSON Schema of one telemetry field's value, as ajv checks it and the AsyncAPI document shows it. */
function fieldSchema (decl: FieldDeclaration): JsonSchema {
  const schema: JsonSchema = { type: decl.type }
  if (decl.type === 'number' || decl.type === 'integer') {
    // JSON.parse turns 1e400 into Infinity: the bounds keep numbers finite
    schema.minimum = decl.minimum ?? -Number.MAX_VALUE
    schema.maximum = decl.maximum ?? Number.MAX_VALUE
  }
  if (decl.type === 'string') {
    schema.maxLength = decl.max_length ?? MAX_STRING_LENGTH
    if (decl.enum !== undefined) schema.enum = decl.enum
    else schema.pattern = STORABLE
  }
  const about = [decl.description, decl.unit === undefined ? undefined : `unit: ${decl.unit}`].filter((s) => s !== undefined).join('; ')
  if (about !== '') schema.description = about
  return schema
}

/** The JSON Schema of a type-4 frame's `data` under a model: `datetime` and at least one declared field, nothing else. */
export function telemetryDataSchema (model: ModelDefinition): JsonSchema {
  return {
    type: 'object',
    properties: {
      datetime: { type: 'string', pattern: DATETIME_PATTERN, maxLength: 64, description: 'when the robot measured it (as in every frame)' },
      ...Object.fromEntries(Object.entries(model.telemetry).map(([field, decl]) => [field, fieldSchema(decl)]))
    },
    required: ['datetime'],
    minProperties: 2,
    additionalProperties: false
  }
}

/** A model version compiled once: what a type-4 frame and a model command are checked with. */
export interface CompiledModel {
  name: string
  version: number
  definition: ModelDefinition
  /** Telemetry field names in declaration order (the CSV columns). */
  fields: readonly string[]
  /** The number and integer fields, in declaration order (aggregates). */
  numericFields: readonly string[]
  /** Errors of a type-4 frame's data, naming the field; null when it is valid. */
  checkData: (data: unknown) => string[] | null
  commands: ReadonlyMap<string, CompiledCommand>
}
export interface CompiledCommand {
  name: string
  timeout: number | null
  /** Errors of the params, naming the field; null when they are valid. Absent params are checked as {}. */
  checkParams: (params: unknown) => string[] | null
}

// One ajv for every model: schemas are compiled without an $id, so nothing is
// kept by the instance but what each validator closes over.
const ajv = new Ajv({ allErrors: true, strict: false, validateSchema: false, addUsedSchema: false })

function describe (errors: ErrorObject[] | null | undefined, prefix: string, model: string): string[] {
  const messages = (errors ?? []).map((e) => {
    const path = e.instancePath.replace(/^\//, '').replace(/\//g, '.')
    const field = `${prefix}${path}`.replace(/\.$/, '')
    switch (e.keyword) {
      case 'additionalProperties':
        return `${prefix}${path === '' ? '' : `${path}.`}${(e.params as { additionalProperty: string }).additionalProperty} is not ${prefix === 'data.' && path === '' ? `a field of model ${model}` : 'allowed'}`
      case 'required':
        return `${prefix}${path === '' ? '' : `${path}.`}${(e.params as { missingProperty: string }).missingProperty} is required`
      case 'minProperties':
        return `data needs at least one field of model ${model}`
      case 'type':
        return `${field} must be ${(e.params as { type: string }).type === 'integer' ? 'an integer' : `a ${(e.params as { type: string }).type}`}`
      case 'pattern':
        return path === 'datetime' && prefix === 'data.' ? `${field} must be an ISO 8601 date-time or "YYYY-MM-DD HH:MM:SS"` : `${field} may not contain NUL characters (\\u0000) or unpaired surrogates`
      case 'enum':
        return `${field} must be one of ${listOf(((e.params as { allowedValues: unknown[] }).allowedValues).map(String)).slice(0, 300)}`
      default:
        return `${field} ${e.message ?? 'is invalid'}`
    }
  })
  return [...new Set(messages)]
}

function compileCommand (name: string, decl: CommandDeclaration, model: string): CompiledCommand {
  const timeout = decl.timeout ?? null
  if (decl.params === undefined) {
    return { name, timeout, checkParams: (params) => params === undefined || (isObject(params) && Object.keys(params).length === 0) ? null : [`params: command ${name} takes no parameters`] }
  }
  const validate: ValidateFunction = ajv.compile(decl.params)
  return {
    name,
    timeout,
    checkParams: (params) => {
      const value = params === undefined ? {} : params
      if (!isObject(value)) return ['params must be a JSON object']
      return validate(value) ? null : describe(validate.errors, 'params.', model)
    }
  }
}

/** Compiles a checked model version. Costly (ajv code generation): once per (name, version). */
export function compileModel (ref: ModelRef, definition: ModelDefinition): CompiledModel {
  const label = `${ref.name} v${ref.version}`
  const validate = ajv.compile(telemetryDataSchema(definition))
  const fields = Object.keys(definition.telemetry)
  return {
    name: ref.name,
    version: ref.version,
    definition,
    fields,
    numericFields: fields.filter((f) => ['number', 'integer'].includes((definition.telemetry[f] as FieldDeclaration).type)),
    checkData: (data) => {
      if (validate(data)) return null
      // "at least one field" fails as minProperties 2, also when it is datetime that is missing
      const hasField = Object.keys(data as object).some((k) => k !== 'datetime')
      return describe(validate.errors?.filter((e) => e.keyword !== 'minProperties' || !hasField), 'data.', label)
    },
    commands: new Map(Object.entries(definition.commands).map(([name, decl]) => [name, compileCommand(name, decl, label)]))
  }
}

/** docs/protocol.md §14.3: the checks of a `result` in a robot's command ack; null when it may be stored. */
export function checkResult (result: unknown): string | null {
  if (!isObject(result)) return 'result must be a JSON object'
  const bytes = Buffer.byteLength(JSON.stringify(result))
  return bytes > MAX_RESULT_BYTES ? `result is ${bytes} bytes of JSON, over the limit of ${MAX_RESULT_BYTES}` : null
}
