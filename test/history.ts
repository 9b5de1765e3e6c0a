// What the history tests share: frames stored through the frame service at
// chosen received_at times, the aggregate answer computed here, the
// aggregate request, and a CSV reader.
import type { FastifyInstance } from 'fastify'
import { bearer } from './helper.js'

export interface Stored { type: number, data: Record<string, unknown>, receivedAt: Date }
export interface Bucket { start: string, count: number, min: Record<string, number>, max: Record<string, number>, avg: Record<string, number> }

/** Deterministic pseudo-random numbers, so that a failure repeats. */
export function prng (seed: number): () => number {
  return () => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 }
}

/** Stores the frames through the frame service, 200 at a time, ids `${prefix}-${i}`. */
export async function storeAll (app: FastifyInstance, robotId: number, frames: Stored[], prefix: string): Promise<void> {
  for (let i = 0; i < frames.length; i += 200) {
    await app.services.frames.store(robotId, frames.slice(i, i + 200).map((f, j) => ({ frameId: `${prefix}-${i + j}`, type: f.type, data: f.data, recordedAt: null, receivedAt: f.receivedAt })))
  }
}

/** What the aggregate endpoint must answer for frames of `type` and these numeric fields: only JSON numbers count. */
export function expectedBuckets (frames: Stored[], type: number, fields: readonly string[], from: Date, to: Date, bucket: number): Bucket[] {
  const groups = new Map<number, Stored[]>()
  for (const f of frames) {
    if (f.type !== type || f.receivedAt < from || f.receivedAt > to) continue
    const b = Math.floor(f.receivedAt.getTime() / (bucket * 1000))
    groups.set(b, [...(groups.get(b) ?? []), f])
  }
  return [...groups.entries()].sort(([a], [b]) => a - b).map(([b, group]) => {
    const out: Bucket = { start: new Date(b * bucket * 1000).toISOString(), count: group.length, min: {}, max: {}, avg: {} }
    for (const field of fields) {
      const values = group.map((f) => f.data[field]).filter((v): v is number => typeof v === 'number')
      if (values.length === 0) continue
      out.min[field] = Math.min(...values)
      out.max[field] = Math.max(...values)
      out.avg[field] = values.reduce((a, v) => a + v, 0) / values.length
    }
    return out
  })
}

export async function aggregate (app: FastifyInstance, jwt: string, uuid: string, query: Record<string, string | number>) {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]): [string, string] => [k, String(v)])).toString()
  return await app.inject({ method: 'GET', url: `/robots/${uuid}/frames/aggregate?${qs}`, headers: bearer(jwt) })
}

/** RFC 4180 with a chosen separator: rows of cells; a quoted part may hold separators, doubled quotes and line breaks. */
export function parseCsv (text: string, separator = ','): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let cell = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { cell += '"'; i++ } else if (c === '"') quoted = false
      else cell += c
    } else if (c === '"') quoted = true
    else if (c === separator) { row.push(cell); cell = '' } else if (c === '\r' && text[i + 1] === '\n') { row.push(cell); rows.push(row); row = []; cell = ''; i++ } else cell += c
  }
  if (cell !== '' || row.length > 0) { row.push(cell); rows.push(row) }
  return rows
}
