// `npm run manage -- create-robots`: the compiled CLI as a real process on a
// real database (a SQLite file, or a fresh PostgreSQL database with
// TEST_DATABASE_URL). It creates the robots (audited like the API's), writes
// the credentials file with mode 0600 in the format fleet mode reads, and
// that file runs the fleet against a real server.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { cliDatabase, MANAGE, run, tempDir } from './spawn.js'
import { listenOn, spawnRobot } from './robot-spawn.js'

const createRobots = async (db: { url: string, cwd: string }, args: string[]): ReturnType<typeof run> =>
  await run(MANAGE, ['create-robots', ...args], { cwd: db.cwd, env: { DATABASE_URL: db.url } })

t.test('create-robots creates N robots, writes their credentials 0600 as fleet mode reads them, and the fleet runs', async (t) => {
  const db = await cliDatabase(t)
  const res = await createRobots(db, ['--count', '4', '--prefix', 'lab', '--out', 'fleet.json'])
  t.equal(res.code, 0, res.stderr)
  t.equal(res.stdout, 'Created 4 robots (lab-001 … lab-004); their credentials are in fleet.json (mode 0600), the only copy of their secrets.\n' +
    'Next: npm run robot -- --fleet 4 --credentials fleet.json\n', 'a summary line and the command to run next')
  const file = join(db.cwd, 'fleet.json')
  t.equal(statSync(file).mode & 0o777, 0o600, 'readable by its owner only')
  const credentials = JSON.parse(readFileSync(file, 'utf8')) as Array<Record<string, unknown>>
  t.same(credentials.map((c) => Object.keys(c)), [['serial', 'token'], ['serial', 'token'], ['serial', 'token'], ['serial', 'token']], 'exactly {"serial","token"} each')
  t.same(credentials.map((c) => c.serial), ['lab-001', 'lab-002', 'lab-003', 'lab-004'])
  t.equal(new Set(credentials.map((c) => c.token)).size, 4, 'four different secrets')

  const app = await db.app()
  for (const c of credentials) {
    t.ok(await app.services.robots.verifySecret(c.serial as string, c.token as string), `${String(c.serial)}: its secret works`)
  }
  const audit = (await app.services.audit.list({ action: 'robot.created' })).items
  t.same(audit.map((a) => a.details?.serial).sort(), ['lab-001', 'lab-002', 'lab-003', 'lab-004'], 'each creation is in the audit log')
  t.ok(audit.every((a) => a.actor === null && a.details?.secret_generated === true), 'by the system (the command line), with a generated secret')

  const url = await listenOn(app)
  const fleet = spawnRobot(t, ['--fleet', '4', '--credentials', file, '--url', url, '--interval', '20', '--count', '3'])
  t.equal(await fleet.exit(), 0, `the fleet command runs them all:\n${fleet.output()}`)
  t.match(fleet.output(), /connected 4 of 4/)
  t.match(fleet.output(), /done: \d+ frames acked ok, 0 errors/)
})

t.test('create-robots refuses to replace a file without --force; --force replaces it with a new 0600 file', async (t) => {
  const db = await cliDatabase(t)
  const file = join(db.cwd, 'fleet.json')
  writeFileSync(file, 'precious', { mode: 0o644 })
  const refused = await createRobots(db, ['--count', '2', '--prefix', 'f', '--out', 'fleet.json'])
  t.equal(refused.code, 1)
  t.match(refused.stderr, /fleet\.json already exists; --force replaces it/)
  t.equal(readFileSync(file, 'utf8'), 'precious', 'the file is untouched')

  const forced = await createRobots(db, ['--count', '2', '--prefix', 'f', '--out', 'fleet.json', '--force'])
  t.equal(forced.code, 0, forced.stderr)
  t.equal(statSync(file).mode & 0o777, 0o600, 'the new file is 0600, whatever the old one was')
  t.same((JSON.parse(readFileSync(file, 'utf8')) as Array<{ serial: string }>).map((c) => c.serial), ['f-001', 'f-002'])
  const app = await db.app()
  t.equal((await app.services.audit.list({ action: 'robot.created' })).items.length, 2, 'the refused run created nothing')
})

t.test('create-robots refuses serials that are taken, before creating any robot or file', async (t) => {
  const db = await cliDatabase(t)
  t.equal((await createRobots(db, ['--count', '2', '--prefix', 'dup', '--out', 'a.json'])).code, 0)
  const again = await createRobots(db, ['--count', '5', '--prefix', 'dup', '--out', 'b.json'])
  t.equal(again.code, 1)
  t.match(again.stderr, /dup-001, dup-002 already exist; nothing was created: choose another --prefix/)
  t.notOk(existsSync(join(db.cwd, 'b.json')), 'no file left behind')
  const app = await db.app()
  t.equal((await app.services.audit.list({ action: 'robot.created' })).items.length, 2, 'no robot created')
})

t.test('create-robots explains its usage', async (t) => {
  const db = { url: `sqlite://${join(tempDir(t), 'united.sqlite')}`, cwd: tempDir(t) }
  const cases: Array<[string[], RegExp]> = [
    [['--out', 'x.json'], /--count takes a whole number from 1 to 10000/],
    [['--count', '0', '--out', 'x.json'], /--count takes a whole number/],
    [['--count', '2.5', '--out', 'x.json'], /--count takes a whole number/],
    [['--count', '3'], /--out FILE is required/],
    [['--count', '3', '--out', 'x.json', '--prefix', 'p'.repeat(125)], /--prefix must be 1 to 124 characters/],
    [['--count', '3', '--out', 'x.json', '--colour'], /Unknown option '--colour'/]
  ]
  for (const [args, message] of cases) {
    const res = await createRobots(db, args)
    t.equal(res.code, 2, args.join(' '))
    t.match(res.stderr, message, args.join(' '))
    t.match(res.stderr, /usage: npm run manage/)
  }
  t.notOk(existsSync(join(db.cwd, 'x.json')), 'no file written')
})
