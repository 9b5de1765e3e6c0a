// Robot models, the pure part (docs/protocol.md §14): every kind of bad model
// refused with a message that names the problem; a compiled model checking
// type-4 data and command parameters the way §14.2 and §14.3 say.
import t from 'tap'
import { checkModel, checkResult, compileModel, MAX_MODEL_BYTES, type ModelDefinition } from '../../src/contract/models.js'
import { validateFrame } from '../../src/contract/frames.js'
import { CLEANER_MODEL } from '../factory.js'

const DT = '2026-12-07T10:15:30Z'
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

function errorsOf (body: unknown): string[] {
  const result = checkModel(body)
  return result.ok ? [] : result.errors
}

/** The cleaner model with one change made by `edit`. */
function cleanerWith (edit: (m: Record<string, any>) => void): Record<string, unknown> {
  const m = clone(CLEANER_MODEL) as Record<string, any>
  edit(m)
  return m
}

t.test('the cleaner model is valid and comes back with only its own keys', async (t) => {
  const result = checkModel(CLEANER_MODEL)
  t.ok(result.ok)
  if (result.ok) t.same(result.model, CLEANER_MODEL)
  t.ok(checkModel({ name: 'empty', telemetry: {}, commands: {} }).ok, 'a model may declare nothing yet')
})

t.test('each kind of bad model is refused, naming the problem', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['not an object', [], /must be a JSON object/],
    ['no name', cleanerWith((m) => { delete m.name }), /^name must match/],
    ['a bad name', cleanerWith((m) => { m.name = 'Cleaner 2' }), /^name must match/],
    ['a name too long', cleanerWith((m) => { m.name = 'a'.repeat(65) }), /^name must match/],
    ['an unknown top-level key', cleanerWith((m) => { m.owner = 'x' }), /^owner is not allowed in a model/],
    ['no telemetry', cleanerWith((m) => { delete m.telemetry }), /^telemetry must be an object/],
    ['commands not an object', cleanerWith((m) => { m.commands = [] }), /^commands must be an object/],
    ['a bad field name', cleanerWith((m) => { m.telemetry['Brush-RPM'] = { type: 'number' } }), /telemetry: "Brush-RPM" is not a valid field name/],
    ['a reserved field name', cleanerWith((m) => { m.telemetry.datetime = { type: 'string' } }), /"datetime" is reserved/],
    ['a stats key as a field', cleanerWith((m) => { m.telemetry.robot_uuid = { type: 'string' } }), /"robot_uuid" is reserved/],
    ['an unknown field type', cleanerWith((m) => { m.telemetry.brush_rpm.type = 'float' }), /^telemetry\.brush_rpm\.type must be one of/],
    ['a field without a type', cleanerWith((m) => { m.telemetry.x = {} }), /^telemetry\.x\.type must be one of/],
    ['a field declaration not an object', cleanerWith((m) => { m.telemetry.x = 'number' }), /^telemetry\.x must be an object/],
    ['minimum on a string', cleanerWith((m) => { m.telemetry.zone.minimum = 1 }), /^telemetry\.zone\.minimum is only for number and integer fields/],
    ['a non-finite bound', cleanerWith((m) => { m.telemetry.brush_rpm.maximum = '3000' }), /^telemetry\.brush_rpm\.maximum must be a finite number/],
    ['minimum above maximum', cleanerWith((m) => { m.telemetry.brush_rpm.minimum = 5000 }), /^telemetry\.brush_rpm\.minimum must not be greater than its maximum/],
    ['max_length on a number', cleanerWith((m) => { m.telemetry.water_level.max_length = 3 }), /max_length is only for string fields/],
    ['max_length over 256', cleanerWith((m) => { m.telemetry.zone.max_length = 257 }), /^telemetry\.zone\.max_length must be an integer from 1 to 256/],
    ['an enum on a number', cleanerWith((m) => { m.telemetry.brush_rpm.enum = ['1'] }), /enum is only for string fields/],
    ['an empty enum', cleanerWith((m) => { m.telemetry.mode.enum = [] }), /^telemetry\.mode\.enum must be a list of 1 to 256 strings/],
    ['a repeated enum value', cleanerWith((m) => { m.telemetry.mode.enum = ['eco', 'eco'] }), /must not repeat a value/],
    ['an unknown field key', cleanerWith((m) => { m.telemetry.mode.pattern = '^(a+)+$' }), /^telemetry\.mode\.pattern is not allowed in a telemetry field/],
    ['a long unit', cleanerWith((m) => { m.telemetry.brush_rpm.unit = 'u'.repeat(33) }), /^telemetry\.brush_rpm\.unit must be at most 32 characters/],
    ['65 fields', cleanerWith((m) => { m.telemetry = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`f${i}`, { type: 'number' }])) }), /^telemetry may declare at most 64 fields/],
    ['a mode as a command', cleanerWith((m) => { m.commands.idle = {} }), /"idle" is reserved and cannot be a command name/],
    ['a bad command name', cleanerWith((m) => { m.commands['go home'] = {} }), /"go home" is not a valid command name/],
    ['a timeout of 0', cleanerWith((m) => { m.commands.dock.timeout = 0 }), /^commands\.dock\.timeout must be a whole number of seconds from 1 to 86400/],
    ['a timeout over a day', cleanerWith((m) => { m.commands.dock.timeout = 86401 }), /^commands\.dock\.timeout must be/],
    ['an unknown command key', cleanerWith((m) => { m.commands.dock.retries = 3 }), /^commands\.dock\.retries is not allowed in a command/],
    ['params not of an object', cleanerWith((m) => { m.commands.dock.params = { type: 'string' } }), /^commands\.dock\.params\.type must be "object"/],
    ['$ref in params', cleanerWith((m) => { m.commands.clean_zone.params.properties.zone = { $ref: 'https://evil.example/schema.json' } }), /commands\.clean_zone\.params\.properties\.zone\.\$ref: the keyword "\$ref" is not allowed/],
    ['pattern in params', cleanerWith((m) => { m.commands.clean_zone.params.properties.zone.pattern = '^(a+)+$' }), /the keyword "pattern" is not allowed/],
    ['format in params', cleanerWith((m) => { m.commands.clean_zone.params.properties.zone.format = 'email' }), /the keyword "format" is not allowed/],
    ['an unknown type in params', cleanerWith((m) => { m.commands.clean_zone.params.properties.passes.type = 'int' }), /properties\.passes\.type must be one of/],
    ['a negative maxLength', cleanerWith((m) => { m.commands.clean_zone.params.properties.zone.maxLength = -1 }), /zone\.maxLength must be a non-negative integer/],
    ['required not a list', cleanerWith((m) => { m.commands.clean_zone.params.required = 'zone' }), /params\.required must be a list of distinct property names/],
    ['an enum of objects', cleanerWith((m) => { m.commands.clean_zone.params.properties.mode.enum = [{ a: 1 }] }), /enum may hold only strings, numbers, booleans and null/],
    ['nested too deep', cleanerWith((m) => {
      let node: Record<string, unknown> = { type: 'object' }
      m.commands.dock.params = node
      for (let i = 0; i < 10; i++) { const inner = { type: 'object' }; node.properties = { x: inner }; node = inner }
    }), /nests deeper than 8 levels/],
    ['over 64 KiB', cleanerWith((m) => { m.description = 'x'.repeat(MAX_MODEL_BYTES) }), /^the model is \d+ bytes of JSON, over the limit of 65536/]
  ]
  for (const [what, body, expected] of cases) {
    const errors = errorsOf(body)
    t.ok(errors.some((e) => expected.test(e)), `${what}: ${errors.join(' | ')}`)
  }
  // every mistake at once
  const many = errorsOf({ name: 'X', telemetry: { a: { type: 'nope' } }, commands: { auto: {} } })
  t.ok(many.length >= 3, `all mistakes are listed: ${many.join(' | ')}`)
})

const cleaner = compileModel({ name: 'cleaner', version: 1 }, CLEANER_MODEL as unknown as ModelDefinition)
const frame = (data: Record<string, unknown>, type = 4): Buffer => Buffer.from(JSON.stringify({ id: 'f1', type, data: { datetime: DT, ...data } }))

t.test('a compiled model knows its fields and numeric fields in declaration order', async (t) => {
  t.same(cleaner.fields, ['brush_rpm', 'water_level', 'mopping', 'zone', 'mode'])
  t.same(cleaner.numericFields, ['brush_rpm', 'water_level'])
  t.same([...cleaner.commands.keys()], ['dock', 'clean_zone'])
  t.equal(cleaner.commands.get('clean_zone')?.timeout, 600)
  t.equal(cleaner.commands.get('dock')?.timeout, null)
})

t.test('type-4 data: each value matches its declaration exactly, errors name the field', async (t) => {
  const ok = validateFrame(frame({ brush_rpm: 1200, water_level: 71.5, mopping: false, zone: 'lobby', mode: 'eco' }), 65536, cleaner)
  t.ok(ok.ok, 'all fields')
  t.ok(validateFrame(frame({ mopping: true }), 65536, cleaner).ok, 'any one field')
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ brush_rpm: '1200' }, /^data\.brush_rpm must be an integer$/],
    [{ brush_rpm: 1.5 }, /^data\.brush_rpm must be an integer$/],
    [{ water_level: '71.5' }, /^data\.water_level must be a number$/],
    [{ water_level: 100.5 }, /^data\.water_level must be <= 100$/],
    [{ brush_rpm: -1 }, /^data\.brush_rpm must be >= 0$/],
    [{ mopping: 'true' }, /^data\.mopping must be a boolean$/],
    [{ mopping: 1 }, /^data\.mopping must be a boolean$/],
    [{ mode: 'turbo' }, /^data\.mode must be one of "eco", "normal", "deep"$/],
    [{ zone: 'z'.repeat(33) }, /^data\.zone must NOT have more than 32 characters$/],
    [{ zone: 'a\u0000b' }, /^data\.zone may not contain NUL/],
    [{ nozzle: 3 }, /^data\.nozzle is not a field of model cleaner v1$/],
    [{}, /^data needs at least one field of model cleaner v1$/],
    [{ brush_rpm: null }, /^data\.brush_rpm must be an integer$/]
  ]
  for (const [data, expected] of bad) {
    const result = validateFrame(frame(data), 65536, cleaner)
    t.notOk(result.ok, JSON.stringify(data))
    if (!result.ok) {
      t.equal(result.id, 'f1')
      t.ok(result.errors.some((e) => expected.test(e)), `${JSON.stringify(data)}: ${result.errors.join(' | ')}`)
    }
  }
  const noTime = validateFrame(Buffer.from(JSON.stringify({ id: 'f2', type: 4, data: { mopping: true } })), 65536, cleaner)
  t.match(noTime, { ok: false, errors: ['data.datetime is required'] })
  const badTime = validateFrame(frame({ mopping: true, datetime: '2026-02-30T00:00:00Z' }), 65536, cleaner)
  t.match(badTime, { ok: false, errors: [/data\.datetime must be an ISO 8601 date-time/] })
  // the fixed types are untouched by a model
  t.ok(validateFrame(frame({ speed: 1, position_x: 0, position_y: 0, angle_theta: 0 }, 1), 65536, cleaner).ok)
  t.notOk(validateFrame(frame({ brush_rpm: 1 }, 1), 65536, cleaner).ok, 'model fields are not position fields')
  const stored = validateFrame(frame({ brush_rpm: 7 }), 65536, cleaner)
  t.ok(stored.ok && stored.frame.recordedAt.toISOString() === '2026-12-07T10:15:30.000Z', 'recorded_at is the datetime')
})

t.test('command parameters: checked against the schema, errors name the field; absent params are {}', async (t) => {
  const clean = cleaner.commands.get('clean_zone')!
  const dock = cleaner.commands.get('dock')!
  t.equal(clean.checkParams({ zone: 'lobby', passes: 2 }), null)
  t.equal(clean.checkParams({ zone: 'lobby', mode: 'deep' }), null)
  t.same(clean.checkParams(undefined), ['params.zone is required'])
  t.same(clean.checkParams({}), ['params.zone is required'])
  t.same(clean.checkParams({ zone: 'lobby', passes: 6 }), ['params.passes must be <= 5'])
  t.same(clean.checkParams({ zone: 'lobby', passes: '2' }), ['params.passes must be an integer'])
  t.same(clean.checkParams({ zone: 'lobby', speed: 2 }), ['params.speed is not allowed'])
  t.same(clean.checkParams({ zone: 'lobby', mode: 'turbo' }), ['params.mode must be one of "eco", "normal", "deep"'])
  t.same(clean.checkParams('lobby'), ['params must be a JSON object'])
  t.same(clean.checkParams([]), ['params must be a JSON object'])
  t.equal(dock.checkParams(undefined), null)
  t.equal(dock.checkParams({}), null)
  t.same(dock.checkParams({ now: true }), ['params: command dock takes no parameters'])
})

t.test('a result is a JSON object of at most 8 KiB', async (t) => {
  t.equal(checkResult({ area_m2: 118.5 }), null)
  t.match(checkResult('done'), /result must be a JSON object/)
  t.match(checkResult([1]), /result must be a JSON object/)
  t.match(checkResult({ blob: 'x'.repeat(8200) }), /over the limit of 8192/)
})

t.test('every reserved name is refused, 64 commands at most, and a string field is 256 characters at most by default', async (t) => {
  for (const field of ['datetime', 'robot_uuid', 'state', 'data_connected', 'command_connected']) {
    t.ok(errorsOf(cleanerWith((m) => { m.telemetry[field] = { type: 'number' } })).some((e) => e.includes(`"${field}" is reserved`)), `field ${field}`)
  }
  for (const mode of ['auto', 'idle', 'error', 'manual']) {
    t.ok(errorsOf(cleanerWith((m) => { m.commands[mode] = {} })).some((e) => e.includes(`"${mode}" is reserved`)), `command ${mode}`)
  }
  const commands = (n: number): Record<string, unknown> => Object.fromEntries(Array.from({ length: n }, (_, i) => [`c${i}`, {}]))
  t.ok(checkModel({ name: 'many', telemetry: {}, commands: commands(64) }).ok, '64 commands')
  t.ok(errorsOf({ name: 'many', telemetry: {}, commands: commands(65) }).some((e) => /^commands may declare at most 64 commands/.test(e)), '65 commands')
  const note = compileModel({ name: 'notes', version: 1 }, { name: 'notes', telemetry: { note: { type: 'string' } }, commands: {} })
  t.equal(note.checkData({ datetime: DT, note: 'n'.repeat(256) }), null, '256 characters')
  t.same(note.checkData({ datetime: DT, note: 'n'.repeat(257) }), ['data.note must NOT have more than 256 characters'])
})
