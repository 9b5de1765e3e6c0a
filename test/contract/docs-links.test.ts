// The repository stands alone: the README and docs/ link only to files and
// headings that exist, code comments cite sections of docs/ that exist, no
// file points at a specification outside the repository, and the reference
// documents name every error code and every setting the code has.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { ConfigSchema } from '../../src/config.js'
import { Errors } from '../../src/errors.js'

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const SKIP = new Set(['node_modules', 'dist', '.tap', 'coverage', '.git', 'data'])

/** Files under `dir` (relative to the root) whose name passes `keep`, skipping build output and dependencies. */
function files (dir: string, keep: (name: string) => boolean): string[] {
  const out: string[] = []
  const walk = (abs: string): void => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      if (SKIP.has(e.name)) continue
      const path = join(abs, e.name)
      if (e.isDirectory()) walk(path)
      else if (e.isFile() && keep(e.name)) out.push(relative(ROOT, path))
    }
  }
  walk(join(ROOT, dir))
  return out
}

const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8')
const markdown = ['README.md', ...files('.', (name) => name.endsWith('.md')).filter((f) => f !== 'README.md')]

/** Markdown without fenced code blocks and inline code, where link-like text is not a link. */
function prose (text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '')
}

/** GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens, duplicates numbered. */
function anchors (file: string): Set<string> {
  const seen = new Map<string, number>()
  const result = new Set<string>()
  for (const m of read(file).replace(/^```[\s\S]*?^```/gm, '').matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = (m[1] as string).replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    const base = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/ /g, '-')
    const n = seen.get(base) ?? 0
    seen.set(base, n + 1)
    result.add(n === 0 ? base : `${base}-${n}`)
  }
  return result
}

/** Every relative link target of a Markdown file, with where it points. */
function links (file: string): Array<{ target: string, path: string, anchor: string | undefined }> {
  return [...prose(read(file)).matchAll(/!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)]
    .map((m) => m[1] as string)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target))
    .map((target) => {
      const [path = '', anchor] = target.split('#')
      return { target, path: path === '' ? file : join(dirname(file), decodeURIComponent(path)), anchor }
    })
}

t.test('the README and docs/ exist, and the README stays a first read', async (t) => {
  for (const doc of ['docs/protocol.md', 'docs/configuration.md', 'docs/operations.md', 'docs/performance.md']) {
    t.ok(existsSync(join(ROOT, doc)), doc)
  }
  t.ok(statSync(join(ROOT, 'README.md')).size <= 16 * 1024, 'README.md is at most ~15 KB')
})

t.test('every relative link in a Markdown file reaches a file, and its anchor a heading', async (t) => {
  const broken: string[] = []
  let checked = 0
  for (const file of markdown) {
    for (const { target, path, anchor } of links(file)) {
      checked++
      if (!existsSync(join(ROOT, path))) {
        broken.push(`${file}: ${target} (no such file)`)
      } else if (anchor !== undefined && anchor !== '' && path.endsWith('.md') && !anchors(path).has(anchor)) {
        broken.push(`${file}: ${target} (no such heading)`)
      }
    }
  }
  t.ok(checked > 50, `${checked} links checked`)
  t.same(broken, [])
})

t.test('the anchor check sees a broken link when there is one', async (t) => {
  const protocol = anchors('docs/protocol.md')
  t.ok(protocol.has('4-data-frames-and-acks'))
  t.notOk(protocol.has('4-data-frames'))
  t.ok(anchors('src/db/README.md').has('backend_flush_after-on-postgresql-pg_backend_flush_after'))
})

/** The sections of a numbered document: `## 4. …` gives 4, `### 4.2 …` gives 4.2. */
function sections (file: string): Set<string> {
  return new Set([...read(file).matchAll(/^#{2,3}\s+(\d+(?:\.\d+)?)\.?\s/gm)].map((m) => m[1] as string))
}

t.test('every "docs/<file>.md §N" cited anywhere names a section that exists', async (t) => {
  const sources = [
    ...['src', 'broker', 'admin', 'test'].flatMap((dir) => files(dir, (name) => /\.(ts|js|eta|md)$/.test(name))),
    ...markdown,
    'Dockerfile', 'docker-compose.yml'
  ]
  const missing: string[] = []
  let cited = 0
  for (const file of new Set(sources)) {
    const text = read(file)
    // "docs/protocol.md §2.3", and the further sections of one citation: "docs/protocol.md §5, §12"
    for (const m of text.matchAll(/docs\/([a-z-]+)\.md\)?,?\s*((?:§\s?\d+(?:\.\d+)?(?:\s*(?:,|and|-|–)\s*)?)+)/g)) {
      const doc = `docs/${m[1] as string}.md`
      if (!existsSync(join(ROOT, doc))) {
        missing.push(`${file}: ${doc}`)
        continue
      }
      const known = sections(doc)
      for (const n of (m[2] as string).matchAll(/§\s?(\d+(?:\.\d+)?)/g)) {
        cited++
        if (!known.has(n[1] as string)) missing.push(`${file}: ${doc} §${n[1] as string}`)
      }
    }
  }
  t.ok(cited > 100, `${cited} citations checked`)
  t.same(missing, [])
})

t.test('no file points at a specification outside the repository', async (t) => {
  const all = [
    ...['src', 'broker', 'admin', 'test', 'docs', '.ci'].flatMap((dir) => files(dir, () => true)),
    ...markdown, 'Dockerfile', 'docker-compose.yml', 'package.json'
  ].filter((file) => !file.startsWith('test/fixtures/'))
  const outside = new Set<string>()
  for (const file of all) {
    const text = read(file)
    if (/contract\.md/i.test(text) || /contract\s*§\s*\d/i.test(text) || /\bSTYLE(\.md| §)/.test(text) || /\.\.\/shared\//.test(text)) outside.add(file)
  }
  t.same([...outside], [])
})

t.test('docs/protocol.md names every error code of src/errors.ts', async (t) => {
  const protocol = read('docs/protocol.md')
  const codes = new Set(Object.values(Errors).map((E) => new E().code))
  t.ok(codes.size > 15)
  t.same([...codes].filter((code) => !protocol.includes(`\`${code}\``)), [])
})

t.test('docs/configuration.md names every variable of src/config.ts', async (t) => {
  const configuration = read('docs/configuration.md')
  const names = Object.keys(ConfigSchema.properties)
  t.ok(names.length > 30)
  t.same(names.filter((name) => !configuration.includes(`\`${name}\``)), [])
})
