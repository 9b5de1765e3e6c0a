// The example robot's telemetry under a model (src/cli/robot-sim.ts
// createTelemetry): every frame it makes passes the model's own compiled
// check (the broker's), whatever the declarations: bounds or none, huge
// bounds, integers between close bounds, enums, short max_lengths.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { checkModel, compileModel, type ModelDefinition } from '../../src/contract/models.js'
import { createTelemetry } from '../../src/cli/robot-sim.js'
import { seeded } from '../random.js'

const EXAMPLE = JSON.parse(readFileSync(new URL('../../examples/cleaner.json', import.meta.url), 'utf8')) as unknown

function model (body: unknown): ModelDefinition {
  const checked = checkModel(body)
  if (!checked.ok) throw new Error(checked.errors.join('; '))
  return checked.model
}

t.test('examples/cleaner.json: every frame of a long run passes the model’s check, with every field, and the values move', async (t) => {
  const def = model(EXAMPLE)
  const compiled = compileModel({ name: def.name, version: 1 }, def)
  const sim = createTelemetry(def, seeded(7))
  t.same(sim.fields, Object.keys(def.telemetry), 'every field is sent')
  const seen = new Map<string, Set<unknown>>()
  for (let i = 0; i < 500; i++) {
    const frame = sim.telemetry(new Date(Date.UTC(2026, 11, 7, 10, 0, i % 60)))
    t.equal(frame.type, 4)
    const errors = compiled.checkData(frame.data)
    if (errors !== null) t.fail(`frame ${i}: ${errors.join('; ')} (${JSON.stringify(frame.data)})`)
    for (const [k, v] of Object.entries(frame.data)) seen.set(k, (seen.get(k) ?? new Set()).add(v))
  }
  t.pass('500 frames checked')
  t.ok((seen.get('brush_rpm')?.size ?? 0) > 10, 'brush_rpm wanders')
  t.ok((seen.get('water_level')?.size ?? 0) > 10, 'water_level wanders')
  t.same([...(seen.get('mopping') ?? [])].sort(), [false, true], 'mopping flips')
  t.same([...(seen.get('mode') ?? [])].sort(), ['deep', 'eco', 'normal'], 'every mode comes up')
  t.ok([...(seen.get('zone') ?? [])].every((z) => typeof z === 'string' && z.length >= 1 && z.length <= 32), 'zones are short words')
})

t.test('any declarations: no bounds, one bound, huge bounds, integers between close bounds, a 1-character string', async (t) => {
  const def = model({
    name: 'odd',
    telemetry: {
      free: { type: 'number' },
      above: { type: 'number', minimum: 1e6 },
      below: { type: 'integer', maximum: -5000 },
      huge: { type: 'number', minimum: -1.7e308, maximum: 1.7e308 },
      tiny: { type: 'number', minimum: 0.001, maximum: 0.002 },
      whole: { type: 'integer', minimum: 2.5, maximum: 3.5 },
      none: { type: 'integer', minimum: 0.2, maximum: 0.8 },
      letter: { type: 'string', max_length: 1 },
      one: { type: 'string', enum: ['only'] }
    },
    commands: {}
  })
  const compiled = compileModel({ name: 'odd', version: 1 }, def)
  const sim = createTelemetry(def, seeded(3))
  t.notOk(sim.fields.includes('none'), 'an integer field with no whole number between its bounds is left out')
  for (let i = 0; i < 300; i++) {
    const frame = sim.telemetry()
    const errors = compiled.checkData(frame.data)
    if (errors !== null) t.fail(`frame ${i}: ${errors.join('; ')} (${JSON.stringify(frame.data)})`)
    t.equal(frame.data.whole, 3)
  }
  t.pass('300 frames checked')
})

t.test('a model without telemetry fields has nothing to send', async (t) => {
  t.same(createTelemetry(model({ name: 'arm', telemetry: {}, commands: {} })).fields, [])
})
