// Compiles dist/ with tsc only when it is not current, so that `npm start`,
// `npm run manage` and `npm run robot` start at once on a checkout that was
// already built (tsc takes 25-40 s; this check a few milliseconds).
//
// The build is current when dist/.build-stamp.json exists and no TypeScript
// file under src/, broker/ or admin/, nor tsconfig.json or package-lock.json,
// was modified since the last successful build started, and the set of those
// TypeScript files is the one that build compiled (a deleted or renamed file
// counts). The stamp is written only after tsc succeeded: a failed build is
// tried again next time. A plain `npm run build` (the pretest's) writes no
// stamp: after a source changed, the next start compiles once more even when
// that build already did. Several of these at once (README: `npm start &`
// then `npm run manage`) take turns through a lock file: one compiles, the
// others wait for it and then find the build current.
//
// Node built-ins only: this runs before anything of the project is compiled.
//   node scripts/build-if-stale.mjs          compile if stale
//   node scripts/build-if-stale.mjs --check  exit 0 if current, 1 if stale (compiles nothing)
import { spawnSync } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const DIST = join(ROOT, 'dist')
const STAMP = join(DIST, '.build-stamp.json')
const LOCK = join(DIST, '.build-lock')
const SOURCE_DIRS = ['src', 'broker', 'admin']
const INPUT_FILES = ['tsconfig.json', 'package-lock.json']
/** What must exist for the build to be usable at all. */
const ENTRY = join(DIST, 'src', 'server.js')
const LOCK_PATIENCE_MS = 10 * 60_000

/** Every .ts file under the source folders, relative to the root, with its mtime. */
function sources () {
  const found = new Map()
  const walk = (dir) => {
    let entries
    try {
      entries = readdirSync(dir, { withFileTypes: true })
    } catch (err) {
      if (err.code === 'ENOENT') return
      throw err
    }
    for (const e of entries) {
      const path = join(dir, e.name)
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(path)
      } else if (e.name.endsWith('.ts')) {
        found.set(relative(ROOT, path).split('\\').join('/'), statSync(path).mtimeMs)
      }
    }
  }
  for (const dir of SOURCE_DIRS) walk(join(ROOT, dir))
  return found
}

function readStamp () {
  try {
    const stamp = JSON.parse(readFileSync(STAMP, 'utf8'))
    return typeof stamp.started === 'number' && Array.isArray(stamp.files) ? stamp : null
  } catch {
    return null
  }
}

/** null when dist/ is current, else why not (one short phrase). */
function staleReason () {
  const stamp = readStamp()
  if (stamp === null) return 'no complete build yet'
  try {
    statSync(ENTRY)
  } catch {
    return 'dist/src/server.js is missing'
  }
  const files = sources()
  const before = new Set(stamp.files)
  const added = [...files.keys()].find((f) => !before.has(f))
  if (added !== undefined) return `${added} is new`
  if (before.size !== files.size) return `${[...before].find((f) => !files.has(f))} was removed`
  for (const name of INPUT_FILES) {
    let mtime
    try {
      mtime = statSync(join(ROOT, name)).mtimeMs
    } catch {
      continue
    }
    if (mtime >= stamp.started) return `${name} changed`
  }
  for (const [file, mtime] of files) {
    if (mtime >= stamp.started) return `${file} changed`
  }
  return null
}

function alive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms) })

/** Takes the build lock, waiting while another live process holds it. */
async function lock () {
  mkdirSync(DIST, { recursive: true })
  const until = Date.now() + LOCK_PATIENCE_MS
  let told = false
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx')
      writeFileSync(fd, String(process.pid))
      closeSync(fd)
      return
    } catch (err) {
      if (err.code !== 'EEXIST') throw err
    }
    let holder = NaN
    try {
      holder = Number.parseInt(readFileSync(LOCK, 'utf8'), 10)
    } catch {}
    // A holder that died (Ctrl-C during tsc) leaves its lock behind; an empty
    // lock is one being written right now.
    if (Number.isInteger(holder) && !alive(holder)) {
      rmSync(LOCK, { force: true })
      continue
    }
    if (Date.now() > until) throw new Error(`${relative(ROOT, LOCK)} has been held for ${LOCK_PATIENCE_MS / 60_000} minutes by process ${holder}; remove it if no build is running`)
    if (!told) {
      process.stderr.write('united: waiting for another build of dist/ to finish…\n')
      told = true
    }
    await sleep(250)
  }
}

function compile (reason) {
  let tsc
  try {
    tsc = createRequire(join(ROOT, 'package.json')).resolve('typescript/bin/tsc')
  } catch {
    process.stderr.write('united: TypeScript is not installed; run `npm install` (with the dev dependencies) first.\n')
    return 1
  }
  process.stderr.write(`united: compiling TypeScript into dist/ (${reason}); this takes about 30 s…\n`)
  // The start of the build is taken from the file system's own clock, the
  // one that stamps the sources: a file saved after this moment is newer.
  writeFileSync(STAMP + '.tmp', '')
  const started = statSync(STAMP + '.tmp').mtimeMs
  const files = [...sources().keys()].sort()
  rmSync(STAMP, { force: true })
  const result = spawnSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.json')], { cwd: ROOT, stdio: 'inherit' })
  if (result.status !== 0) {
    rmSync(STAMP + '.tmp', { force: true })
    process.stderr.write('united: the TypeScript build failed (see above); nothing was started.\n')
    return result.status ?? 1
  }
  writeFileSync(STAMP + '.tmp', JSON.stringify({ started, files }) + '\n')
  renameSync(STAMP + '.tmp', STAMP)
  return 0
}

async function main () {
  if (process.argv.includes('--check')) return staleReason() === null ? 0 : 1
  if (staleReason() === null) return 0
  await lock()
  try {
    // Another process may have built it while this one waited for the lock.
    const reason = staleReason()
    return reason === null ? 0 : compile(reason)
  } finally {
    rmSync(LOCK, { force: true })
  }
}

process.exitCode = await main()
