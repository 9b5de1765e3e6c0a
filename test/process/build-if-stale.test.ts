// scripts/build-if-stale.mjs (prestart, premanage, prerobot): tsc runs only
// when dist/ is not current. Run in a scratch project of its own: a copy of
// the script, a few sources, and a stand-in `typescript` whose tsc counts
// its runs, can be made to fail or to take its time, and writes
// dist/src/server.js like the real one.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import t, { type Test } from 'tap'
import { cleanEnv, ROOT, run, tempDir, type Run } from './spawn.js'

const FAKE_TSC = `const fs = require('node:fs')
const path = require('node:path')
const root = process.cwd()
fs.appendFileSync(path.join(root, 'tsc-runs.log'), process.argv.slice(2).join(' ') + '\\n')
setTimeout(() => {
  if (fs.existsSync(path.join(root, 'tsc-fails'))) {
    console.error('src/a.ts(1,7): error TS2322: Type "string" is not assignable to type "number".')
    process.exit(2)
  }
  fs.mkdirSync(path.join(root, 'dist', 'src'), { recursive: true })
  fs.writeFileSync(path.join(root, 'dist', 'src', 'server.js'), '')
}, Number(process.env.FAKE_TSC_MS ?? 0))
`

interface Project { root: string, build: (args?: string[], env?: Record<string, string>) => Promise<Run>, runs: () => number, touch: (file: string) => void, write: (file: string, text?: string) => void }

function project (t: Test): Project {
  const root = tempDir(t)
  const write = (file: string, text = ''): void => {
    mkdirSync(dirname(join(root, file)), { recursive: true })
    writeFileSync(join(root, file), text)
  }
  mkdirSync(join(root, 'scripts'))
  copyFileSync(join(ROOT, 'scripts', 'build-if-stale.mjs'), join(root, 'scripts', 'build-if-stale.mjs'))
  write('package.json', '{"name":"scratch","private":true,"type":"module"}\n')
  write('package-lock.json', '{}\n')
  write('tsconfig.json', '{}\n')
  write('src/a.ts', 'export const a = 1\n')
  write('broker/b.ts', 'export const b = 1\n')
  write('admin/pages/c.ts', 'export const c = 1\n')
  write('admin/public/admin.css', 'body {}\n')
  write('node_modules/typescript/package.json', '{"name":"typescript","version":"0.0.0"}\n')
  write('node_modules/typescript/bin/tsc', FAKE_TSC)
  return {
    root,
    write,
    build: async (args = [], env = {}) => await run(join(root, 'scripts', 'build-if-stale.mjs'), args, { cwd: root, env }),
    runs: () => existsSync(join(root, 'tsc-runs.log')) ? readFileSync(join(root, 'tsc-runs.log'), 'utf8').split('\n').filter(Boolean).length : 0,
    // Saved now: after the last build started (each run of the script is a new process, tens of milliseconds at least).
    touch: (file) => { const now = new Date(); utimesSync(join(root, file), now, now) }
  }
}

t.test('compiles when there is no build, then starts nothing more until a source changes', async (t) => {
  const p = project(t)
  t.equal((await p.build(['--check'])).code, 1, '--check: stale before any build')
  const first = await p.build()
  t.equal(first.code, 0)
  t.equal(p.runs(), 1, 'tsc ran once')
  t.match(first.stderr, 'compiling TypeScript into dist/ (no complete build yet)')
  t.match(readFileSync(join(p.root, 'tsc-runs.log'), 'utf8'), `-p ${join(p.root, 'tsconfig.json')}`, 'with the project\'s tsconfig.json')
  const second = await p.build()
  t.equal(second.code, 0)
  t.equal(second.stderr, '', 'current: silent')
  t.equal(p.runs(), 1, 'tsc did not run again')
  t.equal((await p.build(['--check'])).code, 0, '--check: current')
})

t.test('a changed, added or removed TypeScript file, tsconfig.json or package-lock.json makes it compile again; other files do not', async (t) => {
  const p = project(t)
  await p.build()
  const cases: Array<[string, () => void, string]> = [
    ['a source edited', () => { p.touch('src/a.ts') }, 'src/a.ts changed'],
    ['a nested source edited', () => { p.touch('admin/pages/c.ts') }, 'admin/pages/c.ts changed'],
    ['tsconfig.json edited', () => { p.touch('tsconfig.json') }, 'tsconfig.json changed'],
    ['dependencies changed', () => { p.touch('package-lock.json') }, 'package-lock.json changed'],
    ['a source added', () => { p.write('broker/new.ts', 'export {}\n') }, 'broker/new.ts is new'],
    ['a source removed', () => { rmSync(join(p.root, 'broker/new.ts')) }, 'broker/new.ts was removed'],
    ['the build output removed', () => { rmSync(join(p.root, 'dist', 'src', 'server.js')) }, 'dist/src/server.js is missing']
  ]
  let runs = p.runs()
  for (const [what, change, reason] of cases) {
    change()
    t.equal((await p.build(['--check'])).code, 1, `${what}: stale`)
    const res = await p.build()
    t.equal(res.code, 0)
    t.equal(p.runs(), ++runs, `${what}: tsc ran`)
    t.match(res.stderr, `(${reason})`)
    t.equal((await p.build(['--check'])).code, 0, `${what}: current afterwards`)
  }
  p.touch('admin/public/admin.css')
  p.write('admin/views/new.eta', '<p></p>\n')
  t.equal((await p.build(['--check'])).code, 0, 'static assets and views are not compiled: still current')
})

t.test('a failed build stops the script with tsc\'s exit code and is tried again next time', async (t) => {
  const p = project(t)
  p.write('tsc-fails')
  const failed = await p.build()
  t.equal(failed.code, 2, "tsc's exit code: npm start does not start")
  t.match(failed.stderr, 'error TS2322')
  t.match(failed.stderr, 'the TypeScript build failed (see above); nothing was started')
  t.equal((await p.build(['--check'])).code, 1, 'still stale, though tsc wrote its output')
  rmSync(join(p.root, 'tsc-fails'))
  t.equal((await p.build()).code, 0)
  t.equal(p.runs(), 2, 'compiled again')
  t.equal((await p.build(['--check'])).code, 0)
})

t.test('two at once (npm start & then npm run manage): one compiles, the other waits for it', async (t) => {
  const p = project(t)
  const env = { FAKE_TSC_MS: '1500' }
  const [a, b] = await Promise.all([p.build([], env), p.build([], env)])
  t.equal(a.code, 0)
  t.equal(b.code, 0)
  t.equal(p.runs(), 1, 'tsc ran once')
  t.match(a.stderr + b.stderr, 'waiting for another build of dist/ to finish')
  t.notOk(existsSync(join(p.root, 'dist', '.build-lock')), 'the lock is gone')
})

t.test('a lock left by a build that was killed is taken over', async (t) => {
  const p = project(t)
  const gone = spawn(process.execPath, ['-e', '0'], { env: cleanEnv({}), stdio: 'ignore' })
  await once(gone, 'exit')
  p.write('dist/.build-lock', String(gone.pid))
  const res = await p.build()
  t.equal(res.code, 0)
  t.equal(p.runs(), 1)
  t.notOk(existsSync(join(p.root, 'dist', '.build-lock')))
})
