// The README's "Your own robot model" against what it shows: the model file
// it posts is a valid model, the command it sends is accepted by that model,
// the one it shows refused is refused with the message it quotes, and the
// example robot is started with the same file.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { checkModel, compileModel } from '../../src/contract/models.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const README = readFileSync(join(ROOT, 'README.md'), 'utf8')
const section = (/## Your own robot model\n([\s\S]*?)\n## /.exec(README)?.[1]) ?? ''

t.test('the README section posts examples/cleaner.json, a valid model, and its commands behave as it says', async (t) => {
  t.match(section, /-d @examples\/cleaner\.json/, 'the model is posted from the file')
  t.match(section, /--model examples\/cleaner\.json/, 'the example robot runs the same file')
  t.match(section, /"model":\{"name":"cleaner","version":1\}/, 'the robot is given version 1 of it')
  const body = JSON.parse(readFileSync(join(ROOT, 'examples', 'cleaner.json'), 'utf8')) as unknown
  const checked = checkModel(body)
  t.ok(checked.ok, checked.ok ? 'valid' : checked.errors.join('; '))
  if (!checked.ok) return
  const clean = compileModel({ name: 'cleaner', version: 1 }, checked.model).commands.get('clean_zone')
  t.ok(clean, 'clean_zone is a command of the model')
  // the two commands of the section, as its shell sends them
  const sent = [...section.matchAll(/\\"params\\":(\{[^}]*\})/g)].map((m) => JSON.parse((m[1] as string).replace(/\\"/g, '"')) as unknown)
  t.same(sent, [{ zone: 'lobby', passes: 2 }, { zone: 'lobby', passes: 9 }])
  t.equal(clean?.checkParams(sent[0]), null, 'the first is accepted')
  const refusal = clean?.checkParams(sent[1])
  t.same(refusal, ['params.passes must be <= 5'])
  t.match(section, `\`${refusal?.[0] ?? ''}\``, 'the README quotes the refusal as it is')
})
