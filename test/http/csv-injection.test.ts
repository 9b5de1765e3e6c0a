// The CSV export is safe to open in a spreadsheet whatever its list
// separator: a robot publishes frames whose ids are formulas, hold `;`, tabs,
// quotes and line breaks, and whose numbers are negative; the export, read
// over HTTP from the real server, is parsed back. Every id comes back whole
// (with one leading `'` where one was added: exactly the text cells that
// start like a formula or with `'`), no text cell starts with a formula
// character when split on `,`, on `;` or on tabs, and every number cell is a
// plain number (`-1.5` stays `-1.5`). On SQLite and PostgreSQL (the numbers
// come from each database's JSON functions).
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { csvNumber, csvText } from '../../src/services/csv.js'
import { ownedRobot } from '../factory.js'
import { bearer, build } from '../helper.js'
import { parseCsv } from '../history.js'
import { connectRobot, listen, sendFrame, subscribe } from '../mqtt.js'

const IDS = [
  'a;=1+1;b',
  "=cmd|' /C calc'!A0",
  '+1',
  '@SUM(1)',
  '-2+3',
  '-1.5',
  '=HYPERLINK("http://x","y")',
  'with "quotes"',
  'line\nbreak',
  'cr\r\nlf',
  '\tTAB first',
  '\rCR first',
  'tab\tinside',
  "'already quoted",
  ' =1+1',
  '\uFF1D1+1',
  'semi;colon',
  'comma,=1+1',
  'plain'
]

/** A spreadsheet's first look at a cell: would it run it as a formula? */
const FORMULA = /^(?:[=+\-@\t\r\n\uFF1D\uFF0B\uFF0D\uFF20]|\s+[=+\-@])/
const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/

/** The numbers of frame i: negative, tiny and huge ones among them. */
function numbers (i: number): Record<string, number> {
  return { speed: -(i + 0.5), position_x: -2e-7 * (i + 1), position_y: 1e21 + i * 1e6, angle_theta: i % 2 === 0 ? -i : i / 4 }
}

t.test('CSV export: formula-like and separator-holding ids round-trip quoted and neutralised; numbers stay numbers', async (t) => {
  const app = await build(t)
  const { user, robot } = await ownedRobot(app)
  const client = await connectRobot(t, app, robot)
  await subscribe(client, `robots/${robot.uuid}/ack`)
  for (const [i, id] of IDS.entries()) {
    const ack = await sendFrame(client, robot.uuid, id, numbers(i))
    t.equal(ack.status, 'ok', `${JSON.stringify(id)} is stored`)
  }

  await listen(app)
  const port = (app.server.address() as AddressInfo).port
  const res = await fetch(`http://127.0.0.1:${port}/robots/${robot.uuid}/frames/export?format=csv&type=1`, { headers: bearer(user.jwt) })
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'text/csv; charset=utf-8')
  const text = await res.text()

  const rows = parseCsv(text, ',')
  t.same(rows[0], ['frame_id', 'type', 'recorded_at', 'received_at', 'speed', 'position_x', 'position_y', 'angle_theta'], 'the header')
  const body = rows.slice(1)
  t.equal(body.length, IDS.length, 'one row per frame')
  t.ok(body.every((r) => r.length === 8), 'every row has its 8 cells: no id was split')

  const back = new Map<string, string[]>()
  for (const row of body) {
    const cell = row[0] as string
    // The documented rule: a text cell that starts with `'` had one added.
    back.set(cell.startsWith("'") ? cell.slice(1) : cell, row)
  }
  t.same([...back.keys()].sort(), [...IDS].sort(), 'every id comes back exactly, after dropping the one added apostrophe')

  for (const [i, id] of IDS.entries()) {
    const row = back.get(id)
    if (row === undefined) continue
    const prefixed = (row[0] as string).startsWith("'")
    t.equal(prefixed, FORMULA.test(id) || id.startsWith("'"), `${JSON.stringify(id)}: ${prefixed ? 'neutralised' : 'as it is'}`)
    for (const [j, cell] of row.entries()) {
      if (j === 1 || j >= 4) continue
      t.notOk(FORMULA.test(cell), `${JSON.stringify(id)}: text cell ${j} does not start like a formula`)
    }
    t.equal(row[1], '1', 'the type')
    const sent = numbers(i)
    const cells = row.slice(4)
    t.ok(cells.every((c) => NUMBER.test(c)), `${JSON.stringify(id)}: the fields are plain numbers (${cells.join(' ')})`)
    t.same(cells.map(Number), [sent.speed, sent.position_x, sent.position_y, sent.angle_theta], `${JSON.stringify(id)}: the numbers sent`)
  }

  // The finding itself: `a;=1+1;b` was written bare, and a spreadsheet whose
  // list separator is `;` split it into a cell `=1+1`.
  t.ok(text.includes('"a;=1+1;b",'), 'an id holding `;` is quoted whole')
  t.ok(text.includes(`"'-2+3",`) || text.includes("'-2+3,"), 'a leading minus in an id is neutralised')

  // Read as a `;` locale or a tab-separated reader would: quoted parts hold
  // the separators, so no cell starts with a formula character.
  for (const separator of [';', '\t']) {
    const cells = parseCsv(text, separator).flat()
    t.same(cells.filter((c) => FORMULA.test(c)), [], `split on ${JSON.stringify(separator)}: no cell starts like a formula`)
  }
})

t.test('the cell rules, one by one', async (t) => {
  const text: Array<[string, string]> = [
    ['plain', 'plain'],
    ['=1+1', "'=1+1"],
    ['+1', "'+1"],
    ['-1', "'-1"],
    ['@x', "'@x"],
    ['\t1', "\"'\t1\""],
    ['\r1', "\"'\r1\""],
    ['\n1', "\"'\n1\""],
    ["'x", "''x"],
    [' =x', "' =x"],
    ['\uFF0B1', "'\uFF0B1"],
    ['a;b', '"a;b"'],
    ['a,b', '"a,b"'],
    ['a"b', '"a""b"'],
    ['a\tb', '"a\tb"'],
    ['=a;b', "\"'=a;b\""],
    ['', ''],
    ['2026-12-01T10:00:00.000Z', '2026-12-01T10:00:00.000Z']
  ]
  for (const [value, want] of text) t.equal(csvText(value), want, `text ${JSON.stringify(value)}`)
  const numbers: Array<[unknown, string]> = [
    [-1.5, '-1.5'],
    ['-1.5', '-1.5'],
    [1e21, '1e+21'],
    ['1000000000000000000000', '1000000000000000000000'],
    [-2e-7, '-2e-7'],
    [0, '0'],
    [null, ''],
    [undefined, ''],
    ['-1+2', "'-1+2"],
    ['=1', "'=1"],
    ['1;2', '"1;2"']
  ]
  for (const [value, want] of numbers) t.equal(csvNumber(value), want, `number ${JSON.stringify(value)}`)
})
