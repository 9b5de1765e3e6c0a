// Keyset pagination shared by every list (docs/protocol.md §6.1): `limit`, an opaque
// `cursor`, and `{items, next_cursor}`. No OFFSET anywhere.
import { Op } from 'sequelize'
import { Errors } from '../errors.js'

export interface PageRequest { limit?: number, cursor?: string }
export interface Page<T> { items: T[], next_cursor: string | null }

export const DEFAULT_LIMIT = 50
export const MAX_LIMIT = 1000

export function encodeCursor (key: Array<string | number>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url')
}

/** Decodes a cursor made by encodeCursor; any other string is a 400. */
export function decodeCursor (cursor: string, shape: Array<'string' | 'number' | 'date'>): Array<string | number> {
  let key: unknown
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw new Errors.BAD_CURSOR()
  }
  if (!Array.isArray(key) || key.length !== shape.length) throw new Errors.BAD_CURSOR()
  shape.forEach((kind, i) => {
    const value: unknown = key[i]
    const ok = kind === 'number'
      ? typeof value === 'number' && Number.isSafeInteger(value)
      : typeof value === 'string' && value.length <= 64 && (kind !== 'date' || !Number.isNaN(Date.parse(value)))
    if (!ok) throw new Errors.BAD_CURSOR()
  })
  return key as Array<string | number>
}

export function pageLimit (limit: number | undefined): number {
  return Math.min(Math.max(limit ?? DEFAULT_LIMIT, 1), MAX_LIMIT)
}

/**
 * Given rows fetched with `limit + 1`, returns the page and the cursor of its
 * last row when another page follows.
 */
export function toPage<R, T> (rows: R[], limit: number, view: (row: R) => T, key: (row: R) => Array<string | number>): Page<T> {
  const more = rows.length > limit
  const pageRows = more ? rows.slice(0, limit) : rows
  const last = pageRows[pageRows.length - 1]
  return { items: pageRows.map(view), next_cursor: more && last !== undefined ? encodeCursor(key(last)) : null }
}

/**
 * The rows after a cursor `(at, id)` of a list ordered by `at` then `id`,
 * both descending: `at <= cursor's` bounds the scan of an index on
 * (…, at), the second condition skips the rows of that same instant up to the
 * cursor's id. Written as one OR (`at < x OR (at = x AND id < y)`), it gave
 * PostgreSQL no bound: a page 1,000 rows deep read the 1,000 newer rows.
 */
export function olderThan (atField: string, at: Date, idField: string, id: string): Array<Record<string | symbol, unknown>> {
  return [{ [atField]: { [Op.lte]: at } }, { [Op.or]: [{ [atField]: { [Op.lt]: at } }, { [idField]: { [Op.lt]: id } }] }]
}
