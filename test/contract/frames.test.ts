import t, { type Test } from 'tap'
import { parseFrameDatetime, validateFrame, type FrameResult } from '../../src/contract/frames.js'

const MAX = 65536
const DT = '2024-05-01 12:00:00'

const position = { speed: 1.5, position_x: 10, position_y: -20, angle_theta: 0.5, datetime: DT }
const geo = { latitude: 48.85, longitude: 2.35, datetime: DT }

function check (frame: unknown, maxBytes = MAX): FrameResult {
  return validateFrame(Buffer.from(typeof frame === 'string' ? frame : JSON.stringify(frame)), maxBytes)
}

/** The errors of a frame that must fail; fails the test when it passes. */
function errorsOf (t: Test, result: FrameResult): { id: string | null, errors: string[] } {
  if (result.ok) {
    t.fail('expected a validation error')
    return { id: null, errors: [] }
  }
  return { id: result.id, errors: result.errors }
}

t.test('a valid position frame passes, with its recorded time', async (t) => {
  const text = JSON.stringify({ id: 'f-1', type: 1, data: position })
  const result = check(text)
  t.same(result, { ok: true, frame: { id: 'f-1', type: 1, data: position, recordedAt: new Date('2024-05-01T12:00:00Z'), text } })
})

t.test('a geo frame passes with and without altitude and accuracy', async (t) => {
  t.equal(check({ id: 'g', type: 2, data: geo }).ok, true, 'without the optional fields')
  t.equal(check({ id: 'g', type: 2, data: { ...geo, altitude: 35.5 } }).ok, true, 'with altitude')
  t.equal(check({ id: 'g', type: 2, data: { ...geo, accuracy: 0 } }).ok, true, 'with accuracy 0')
  t.equal(check({ id: 'g', type: 2, data: { ...geo, altitude: -12, accuracy: 3.2 } }).ok, true, 'with both')
  t.equal(check({ id: 'g', type: 2, data: { latitude: -90, longitude: 180, datetime: DT } }).ok, true, 'at the bounds')
  t.equal(check({ id: 'g', type: 2, data: { latitude: 90, longitude: -180, datetime: DT } }).ok, true, 'at the other bounds')
})

t.test('a hardware frame passes with any one metric', async (t) => {
  for (const [metric, value] of [['battery', 55], ['temperature', -10.5], ['cpu', 0], ['memory', 100]] as const) {
    const result = check({ id: 'h', type: 3, data: { datetime: DT, [metric]: value } })
    t.equal(result.ok, true, metric)
  }
  t.equal(check({ id: 'h', type: 3, data: { datetime: DT, battery: 100, temperature: 40, cpu: 12.5, memory: 0 } }).ok, true, 'all metrics')
})

t.test('a hardware frame with only a datetime is an error', async (t) => {
  const { id, errors } = errorsOf(t, check({ id: 'h', type: 3, data: { datetime: DT } }))
  t.equal(id, 'h')
  t.match(errors, [/at least one of battery, temperature, cpu, memory/])
})

t.test('each required position field is required', async (t) => {
  for (const field of Object.keys(position)) {
    const data: Record<string, unknown> = { ...position }
    delete data[field]
    const { id, errors } = errorsOf(t, check({ id: 'p', type: 1, data }))
    t.equal(id, 'p', `${field}: the id is echoed`)
    t.same(errors, [`data.${field} is required`], field)
  }
})

t.test('each required geo field is required', async (t) => {
  for (const field of Object.keys(geo)) {
    const data: Record<string, unknown> = { ...geo }
    delete data[field]
    const { errors } = errorsOf(t, check({ id: 'g', type: 2, data }))
    t.same(errors, [`data.${field} is required`], field)
  }
})

t.test('a hardware frame requires its datetime', async (t) => {
  const { errors } = errorsOf(t, check({ id: 'h', type: 3, data: { battery: 50 } }))
  t.same(errors, ['data.datetime is required'])
})

t.test('each envelope field is required', async (t) => {
  t.match(errorsOf(t, check({ type: 1, data: position })), { id: null, errors: ['id is required'] })
  t.match(errorsOf(t, check({ id: 'e', data: position })), { id: 'e', errors: ['type is required'] })
  t.match(errorsOf(t, check({ id: 'e', type: 1 })), { id: 'e', errors: ['data is required'] })
  const { errors } = errorsOf(t, check({}))
  t.same(new Set(errors), new Set(['id is required', 'type is required', 'data is required']), 'all of them at once')
})

t.test('an unknown frame type is an error', async (t) => {
  for (const type of [0, 5, 1.5, '1', null]) {
    const { id, errors } = errorsOf(t, check({ id: 'x', type, data: position }))
    t.equal(id, 'x')
    t.ok(errors.some((e) => e.startsWith('type ')), `type ${JSON.stringify(type)}: ${errors.join('; ')}`)
  }
  t.match(errorsOf(t, check({ id: 'x', type: 5, data: position })).errors, [/type must be 1 \(position\), 2 \(geo\), 3 \(hardware\) or 4 \(telemetry\)/])
  // type 4 exists, but only for a robot with a model (test/contract/models.test.ts)
  t.same(errorsOf(t, check({ id: 'x', type: 4, data: position })).errors, ['this robot has no model: type 4 (telemetry) frames need one'])
})

t.test('data that is not an object is an error', async (t) => {
  for (const data of [[], 'x', 3, null]) {
    const { errors } = errorsOf(t, check({ id: 'x', type: 1, data }))
    t.match(errors, [/^data must be a object/], JSON.stringify(data))
  }
})

t.test('a numeric string is an error that names the field', async (t) => {
  for (const field of ['speed', 'position_x', 'position_y', 'angle_theta']) {
    const { errors } = errorsOf(t, check({ id: 'p', type: 1, data: { ...position, [field]: '1.5' } }))
    t.same(errors, [`data.${field} must be a number`], field)
  }
  t.same(errorsOf(t, check({ id: 'g', type: 2, data: { ...geo, latitude: '48.8' } })).errors, ['data.latitude must be a number'])
  t.same(errorsOf(t, check({ id: 'h', type: 3, data: { datetime: DT, battery: '50' } })).errors, ['data.battery must be a number'])
  t.same(errorsOf(t, check({ id: 'h', type: 3, data: { datetime: DT, battery: true } })).errors, ['data.battery must be a number'])
})

t.test('a field not listed for the frame type is named in the error', async (t) => {
  t.same(errorsOf(t, check({ id: 'p', type: 1, data: { ...position, battery: 50 } })).errors, ['data.battery is not a field of a position frame'])
  t.same(errorsOf(t, check({ id: 'g', type: 2, data: { ...geo, speed: 1 } })).errors, ['data.speed is not a field of a geo frame'])
  t.same(errorsOf(t, check({ id: 'h', type: 3, data: { datetime: DT, cpu: 1, latitude: 1 } })).errors, ['data.latitude is not a field of a hardware frame'])
  t.same(errorsOf(t, check({ id: 'e', type: 1, data: position, extra: true })).errors, ['extra is not a field of a frame'])
})

t.test('out-of-range values are errors that name the field', async (t) => {
  const cases: Array<[number, Record<string, unknown>, string]> = [
    [2, { ...geo, latitude: 90.0001 }, 'latitude'],
    [2, { ...geo, latitude: -91 }, 'latitude'],
    [2, { ...geo, longitude: 180.5 }, 'longitude'],
    [2, { ...geo, longitude: -181 }, 'longitude'],
    [2, { ...geo, accuracy: -0.1 }, 'accuracy'],
    [3, { datetime: DT, battery: 101 }, 'battery'],
    [3, { datetime: DT, battery: -1 }, 'battery'],
    [3, { datetime: DT, cpu: 100.5 }, 'cpu'],
    [3, { datetime: DT, cpu: -5 }, 'cpu'],
    [3, { datetime: DT, memory: 150 }, 'memory'],
    [3, { datetime: DT, memory: -0.01 }, 'memory']
  ]
  for (const [type, data, field] of cases) {
    const { id, errors } = errorsOf(t, check({ id: 'r', type, data }))
    t.equal(id, 'r')
    t.equal(errors.length, 1, `${field}=${String(data[field])}: one error`)
    t.match(errors[0], new RegExp(`^data\\.${field} must be [<>]=`), `${field}=${String(data[field])}: ${String(errors[0])}`)
  }
})

t.test('every error of a frame is reported at once', async (t) => {
  const { errors } = errorsOf(t, check({ id: 'm', type: 2, data: { latitude: 200, longitude: '2', datetime: 'yesterday', color: 'red' } }))
  t.equal(errors.length, 4, errors.join('; '))
  t.ok(errors.some((e) => e.includes('data.latitude')))
  t.ok(errors.some((e) => e.includes('data.longitude')))
  t.ok(errors.some((e) => e.includes('data.datetime')))
  t.ok(errors.some((e) => e.includes('data.color')))
})

t.test('a bad datetime is an error naming the accepted formats', async (t) => {
  for (const datetime of ['yesterday', '', '2024-05-01', '12:00:00', '2024-13-01 12:00:00', '2024-05-01 25:00:00', '2024-02-30T10:00:00Z', '2023-02-29 10:00:00', '2024-04-31T00:00:00+02:00', '01/05/2024 12:00:00', '2024-05-01T12:00:00+25:00', 1714564800]) {
    const { errors } = errorsOf(t, check({ id: 'd', type: 1, data: { ...position, datetime } }))
    t.equal(errors.length, 1, JSON.stringify(datetime))
    t.match(errors[0], /^data\.datetime must be/, `${JSON.stringify(datetime)}: ${String(errors[0])}`)
  }
  const { errors } = errorsOf(t, check({ id: 'd', type: 1, data: { ...position, datetime: 'soon' } }))
  t.same(errors, ['data.datetime must be an ISO 8601 date-time or "YYYY-MM-DD HH:MM:SS"'])
})

t.test("the original robot's YYYY-MM-DD HH:MM:SS is taken as UTC", async (t) => {
  const result = check({ id: 'd', type: 1, data: { ...position, datetime: '2024-05-01 12:00:00' } })
  t.equal(result.ok && result.frame.recordedAt.toISOString(), '2024-05-01T12:00:00.000Z')
  const fraction = check({ id: 'd', type: 1, data: { ...position, datetime: '2024-05-01 12:00:00.250' } })
  t.equal(fraction.ok && fraction.frame.recordedAt.toISOString(), '2024-05-01T12:00:00.250Z', 'with a fraction of a second')
})

t.test('ISO 8601 date-times keep their offset', async (t) => {
  const cases: Array<[string, string]> = [
    ['2024-05-01T14:00:00+02:00', '2024-05-01T12:00:00.000Z'],
    ['2024-05-01T07:30:00-04:30', '2024-05-01T12:00:00.000Z'],
    ['2024-05-01T12:00:00Z', '2024-05-01T12:00:00.000Z'],
    ['2024-05-01T12:00:00.123Z', '2024-05-01T12:00:00.123Z'],
    ['2024-05-01T12:00:00', '2024-05-01T12:00:00.000Z']
  ]
  for (const [datetime, instant] of cases) {
    const result = check({ id: 'd', type: 1, data: { ...position, datetime } })
    t.equal(result.ok && result.frame.recordedAt.toISOString(), instant, datetime)
  }
  t.equal(parseFrameDatetime('2024-05-01T14:00:00+02:00')?.toISOString(), '2024-05-01T12:00:00.000Z')
  t.equal(parseFrameDatetime('not a date'), null)
  t.equal(parseFrameDatetime('2024-02-29 23:30:00')?.toISOString(), '2024-02-29T23:30:00.000Z', 'a leap day exists')
  t.equal(parseFrameDatetime('2024-03-01T00:30:00+01:00')?.toISOString(), '2024-02-29T23:30:00.000Z', 'an offset may cross a day')
})

t.test('a missing or malformed id is acked with id null', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['missing', undefined],
    ['empty', ''],
    ['65 characters', 'x'.repeat(65)],
    ['a number', 42],
    ['null', null],
    ['an object', { id: 'x' }]
  ]
  for (const [name, id] of cases) {
    const frame: Record<string, unknown> = { type: 1, data: position }
    if (id !== undefined) frame.id = id
    const { id: acked, errors } = errorsOf(t, check(frame))
    t.equal(acked, null, `${name}: id null`)
    t.ok(errors.length > 0 && errors.every((e) => e.startsWith('id ')), `${name}: ${errors.join('; ')}`)
  }
  t.same(errorsOf(t, check({ id: 'x'.repeat(65), type: 1, data: position })).errors, ['id must be a string of 1 to 64 characters'])
  t.same(errorsOf(t, check({ id: '', type: 1, data: position })).errors, ['id must be a string of 1 to 64 characters'])
  t.same(errorsOf(t, check({ id: 42, type: 1, data: position })).errors, ['id must be a string'])
})

t.test('ids of 1 and 64 characters are accepted', async (t) => {
  t.equal(check({ id: 'a', type: 1, data: position }).ok, true)
  const id = 'x'.repeat(64)
  const result = check({ id, type: 1, data: position })
  t.equal(result.ok && result.frame.id, id)
})

t.test('a malformed id does not hide the other errors', async (t) => {
  const { id, errors } = errorsOf(t, check({ id: 7, type: 9, data: position }))
  t.equal(id, null)
  t.equal(errors.length, 2, errors.join('; '))
})

t.test('unparseable JSON is acked with id null', async (t) => {
  for (const payload of ['{"id": "x", "type": 1', 'not json', '', '{id: "x"}', '\u0000\u0001']) {
    t.same(check(payload), { ok: false, id: null, errors: ['payload is not valid JSON'] }, JSON.stringify(payload))
  }
  t.same(validateFrame(Buffer.from([0xff, 0xfe, 0x7b]), MAX), { ok: false, id: null, errors: ['payload is not valid JSON'] }, 'not UTF-8')
})

t.test('JSON that is not an object is acked with id null', async (t) => {
  for (const payload of ['[]', '[{"id":"x","type":1,"data":{}}]', '"x"', '42', 'null', 'true']) {
    t.same(check(payload), { ok: false, id: null, errors: ['frame must be a JSON object with id, type and data'] }, payload)
  }
})

t.test('a payload over maxBytes is refused with id null, without being parsed', async (t) => {
  const frame = JSON.stringify({ id: 'big', type: 1, data: position })
  const size = Buffer.byteLength(frame)
  t.equal(check(frame, size).ok, true, 'exactly maxBytes is accepted')
  t.same(check(frame, size - 1), { ok: false, id: null, errors: [`frame is ${size} bytes, over the limit of ${size - 1}`] }, 'one byte over')

  // Not parsed: invalid JSON over the limit reports the size, not the syntax,
  // and JSON.parse is never called.
  const original = JSON.parse
  let parsed = 0
  JSON.parse = ((...args: Parameters<typeof JSON.parse>) => { parsed++; return original(...args) }) as typeof JSON.parse
  t.teardown(() => { JSON.parse = original })
  const result = validateFrame(Buffer.alloc(300, '{'), 256)
  JSON.parse = original
  t.same(result, { ok: false, id: null, errors: ['frame is 300 bytes, over the limit of 256'] })
  t.equal(parsed, 0, 'JSON.parse was not called')
})

t.test('1e400 (Infinity after JSON.parse) is rejected', async (t) => {
  for (const field of ['speed', 'position_x', 'position_y', 'angle_theta']) {
    const payload = JSON.stringify({ id: 'inf', type: 1, data: { ...position, [field]: 0 } }).replace(`"${field}":0`, `"${field}":1e400`)
    const { id, errors } = errorsOf(t, check(payload))
    t.equal(id, 'inf')
    t.equal(errors.length, 1, field)
    t.match(errors[0], new RegExp(`^data\\.${field} `), `${field}: ${String(errors[0])}`)
  }
  const negative = JSON.stringify({ id: 'inf', type: 3, data: { datetime: DT, temperature: 0 } }).replace('"temperature":0', '"temperature":-1e400')
  t.match(errorsOf(t, check(negative)).errors, [/^data\.temperature /], '-Infinity too')
  const altitude = JSON.stringify({ id: 'inf', type: 2, data: { ...geo, altitude: 0 } }).replace('"altitude":0', '"altitude":1e400')
  t.match(errorsOf(t, check(altitude)).errors, [/^data\.altitude /], 'an optional field too')
})

t.test('deeply nested JSON does not throw', async (t) => {
  const deep = '['.repeat(100_000)
  t.doesNotThrow(() => validateFrame(Buffer.from(deep), 1_000_000))
  t.same(validateFrame(Buffer.from(deep), 1_000_000), { ok: false, id: null, errors: ['payload is not valid JSON'] })

  const closedDeep = '['.repeat(100_000) + ']'.repeat(100_000)
  t.doesNotThrow(() => validateFrame(Buffer.from(closedDeep), 1_000_000))
  const result = validateFrame(Buffer.from(closedDeep), 1_000_000)
  t.equal(result.ok, false, 'a deep array is not a frame')

  const inData = `{"id":"deep","type":1,"data":${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}}`
  t.doesNotThrow(() => validateFrame(Buffer.from(inData), 1_000_000))
  const nested = validateFrame(Buffer.from(inData), 1_000_000)
  t.match(nested, { ok: false, id: 'deep' }, 'a deeply nested data field is an error for that frame')
})

t.test('an ack lists at most 20 errors, then says how many more there were', async (t) => {
  const data: Record<string, unknown> = { speed: 1, position_x: 1, position_y: 1, angle_theta: 1, datetime: '2024-01-01 00:00:00' }
  for (let i = 0; i < 50; i++) data[`extra${i}`] = i
  const result = validateFrame(Buffer.from(JSON.stringify({ id: 'many', type: 1, data })), 65536)
  t.equal(result.ok, false)
  if (result.ok) return
  t.equal(result.errors.length, 21)
  t.equal(result.errors[20], 'and 30 more errors')
  t.equal(result.errors[0], 'data.extra0 is not a field of a position frame')
})

t.test('strings the database cannot store are refused before they reach a batch; paired surrogates pass', async (t) => {
  const nul = errorsOf(t, check('{"id":"bad\\u0000id","type":1,"data":' + JSON.stringify(position) + '}'))
  t.same(nul, { id: 'bad\u0000id', errors: ['strings may not contain NUL characters (\\u0000) or unpaired surrogates'] }, 'NUL in the id: refused, the id echoed')
  const lone = errorsOf(t, check('{"id":"half-\\ud83e","type":1,"data":' + JSON.stringify(position) + '}'))
  t.equal(lone.id, 'half-\ud83e')
  t.match(lone.errors, [/unpaired surrogates/], 'an unpaired high surrogate: refused')
  t.match(errorsOf(t, check('{"id":"\\udc00-low","type":1,"data":' + JSON.stringify(position) + '}')).errors, [/unpaired surrogates/], 'an unpaired low surrogate: refused')

  const emoji = check('{"id":"bot-\\ud83e\\udd16","type":1,"data":' + JSON.stringify(position) + '}')
  t.ok(emoji.ok && emoji.frame.id === 'bot-🤖', 'an escaped surrogate pair (an emoji) passes')
  const literal = check(JSON.stringify({ id: 'text \\u0000 as text', type: 1, data: position }))
  t.ok(literal.ok && literal.frame.id === 'text \\u0000 as text', 'the six characters \\u0000 written as text pass')
  t.ok(check({ id: 'plain', type: 3, data: { battery: 5, datetime: DT } }).ok, 'a frame without escapes is not walked and passes')
})

t.test('a hardware frame without a metric is one error that says so', async (t) => {
  t.same(errorsOf(t, check({ id: 'h', type: 3, data: { datetime: DT } })).errors, ['a hardware frame needs at least one of battery, temperature, cpu, memory'])
  t.same(errorsOf(t, check({ id: 'h', type: 3, data: { datetime: DT, colour: 1 } })).errors.sort(), ['a hardware frame needs at least one of battery, temperature, cpu, memory', 'data.colour is not a field of a hardware frame'])
  for (const metric of ['battery', 'temperature', 'cpu', 'memory']) t.equal(check({ id: 'h', type: 3, data: { datetime: DT, [metric]: 1 } }).ok, true, metric)
})

t.test('the instant of every accepted date-time is the one Date.parse reads from it', async (t) => {
  // The pattern decides what is accepted; the instant is read by position.
  // Checked here against V8's own ISO parser over random accepted strings.
  let seed = 11
  const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return Math.floor(seed / 2147483648 * n) }
  const two = (n: number): string => String(n).padStart(2, '0')
  let checked = 0
  for (let i = 0; i < 5000; i++) {
    const y = random(10000)
    const m = 1 + random(12)
    const d = 1 + random(31)
    const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0
    const exists = d <= (m === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(m) ? 30 : 31)
    const day = `${String(y).padStart(4, '0')}-${two(m)}-${two(d)}`
    const midnight = random(50) === 0
    const time = midnight ? '24:00' : `${two(random(24))}:${two(random(60))}`
    const seconds = random(3) === 0 ? '' : `:${midnight ? '00' : two(random(60))}${random(2) === 0 ? '' : `.${midnight ? '0'.repeat(1 + random(6)) : String(random(1e6)).padStart(1 + random(6), '0').slice(0, 6)}`}`
    const zone = ['', 'Z', 'z', `+${two(random(24))}:${two(random(60))}`, `-${two(random(24))}${two(random(60))}`][random(5)] as string
    const original = random(4) === 0 && seconds !== '' && zone === ''
    const value = original ? `${day} ${time}${seconds === '' ? ':00' : seconds}` : `${day}${random(2) === 0 ? 'T' : 't'}${time}${seconds}${zone}`
    const parsed = parseFrameDatetime(value)
    const iso = (original ? value.replace(' ', 'T') : value) + (zone === '' ? 'Z' : '')
    const expected = Date.parse(iso.replace(/^(\d{4})/, (y) => Number(y) < 100 ? `+00${y}` : y))
    if (!exists) {
      if (parsed !== null) t.fail(`${value}: accepted, but there is no such day`)
    } else if (Number.isNaN(expected)) {
      t.fail(`${value}: Date.parse cannot read it`)
    } else {
      checked++
      if (parsed?.getTime() !== expected) t.fail(`${value}: ${String(parsed?.toISOString())}, Date.parse says ${new Date(expected).toISOString()}`)
    }
  }
  t.ok(checked > 3000, `${checked} accepted date-times agree with Date.parse`)
})
