// The layout's dependency rule (README, "Development"): the contract depends
// on nothing of ours, services on the contract and the base modules, cluster
// mode's Redis side (src/cluster) on the services' interfaces it implements
// and the contract,
// the broker on services, the contract and the cluster (its emitter and
// persistence); only the HTTP layer and the admin sit above them. Read from the import statements of the sources themselves.
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
/** src/ modules below every layer: configuration, errors, events, logging, metrics, TLS files. */
const BASE = ['src/config.ts', 'src/errors.ts', 'src/events.ts', 'src/logger.ts', 'src/metrics.ts', 'src/tls.ts']

function sources (dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)))
}

/** The project files a source imports (static, dynamic and type-only), as paths from the root. */
function projectImports (file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8')
  const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1] as string)
  return specs.map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)).replace(/\.js$/, '.ts'))
}

function violations (dir: string, allowed: (target: string) => boolean): string[] {
  return sources(dir).flatMap((file) => projectImports(file).filter((target) => !allowed(target)).map((target) => `${file} imports ${target}`))
}

const inside = (...prefixes: string[]) => (target: string): boolean => prefixes.some((p) => target.startsWith(p)) || BASE.includes(target)

t.test('the contract imports nothing of ours but itself', async (t) => {
  t.ok(sources('src/contract').length > 0)
  t.same(violations('src/contract', (target) => target.startsWith('src/contract/')), [])
})

t.test('services depend on the contract, the database layer and the base modules only', async (t) => {
  t.same(violations('src/services', inside('src/services/', 'src/contract/', 'src/db/')), [])
})

t.test('cluster mode depends on the services it implements, the contract and the base modules, never on the broker, HTTP or the admin', async (t) => {
  t.ok(sources('src/cluster').length > 0)
  t.same(violations('src/cluster', inside('src/cluster/', 'src/services/', 'src/contract/')), [])
})

t.test('the broker depends on services, the contract, the cluster and the base modules, never on HTTP or the admin', async (t) => {
  t.same(violations('broker', inside('broker/', 'src/services/', 'src/contract/', 'src/cluster/')), [])
})

t.test('the check sees a wrong-way import when there is one', async (t) => {
  // the HTTP layer is above the services, so it must show up as outside them
  t.not(violations('src/http', inside('src/services/', 'src/contract/')).length, 0)
})
