// Reading the admin pages the way a user does: field errors next to their
// field, what an input holds, the links of a table and a pager. Plain regular
// expressions over the server-rendered HTML (the views are small and regular).
import type { Response } from 'light-my-request'
import type { AdminBrowser } from './browser.js'

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" }

/** Undoes the views' HTML escaping. */
export function unescape (html: string): string {
  return html.replace(/&(amp|lt|gt|quot|#39);/g, (_, e: string) => ENTITIES[e] as string)
}

/** The fields that carry an error message (`id="e-<field>"`), in page order. */
export function errorFields (body: string): string[] {
  return [...body.matchAll(/<small class="error" id="e-([\w-]+)">/g)].map((m) => m[1] as string)
}

/**
 * The error shown for `name`, provided it sits inside that field's own
 * `<div class="field … invalid">` (next to its input, select or checkbox);
 * `misplaced: …` when the message is elsewhere, undefined when there is none.
 */
export function errorNextTo (body: string, name: string): string | undefined {
  const m = new RegExp(`<small class="error" id="e-${name}">([^<]*)</small>`).exec(body)
  if (m === null) return undefined
  const start = body.lastIndexOf('<div class="field', m.index)
  const block = start < 0 ? '' : body.slice(start, m.index)
  const opening = block.slice(0, block.indexOf('>') + 1)
  const placed = opening.includes(' invalid"') && block.includes(`name="${name}"`) && !block.includes('</div>')
  return placed ? unescape(m[1] as string) : `misplaced: ${unescape(m[1] as string)}`
}

/** The value of the text (or password) input named `name`; undefined when there is no such input. */
export function inputValue (body: string, name: string): string | undefined {
  const m = new RegExp(`<input id="f-${name}" name="${name}" type="[a-z]+" value="([^"]*)"`).exec(body)
  return m === null ? undefined : unescape(m[1] as string)
}

/** Whether the checkbox named `name` is checked; undefined when there is no such checkbox. */
export function isChecked (body: string, name: string): boolean | undefined {
  const m = new RegExp(`<input type="checkbox" name="${name}"( checked)?>`).exec(body)
  return m === null ? undefined : m[1] !== undefined
}

/** The value of the selected option of the select named `name`. */
export function selectedOption (body: string, name: string): string | undefined {
  const select = new RegExp(`<select id="f-${name}" name="${name}">([\\s\\S]*?)</select>`).exec(body)?.[1] ?? ''
  const m = /<option value="([^"]*)" selected>/.exec(select)
  return m === null ? undefined : unescape(m[1] as string)
}

/** The part of the page between `start` (included) and the next `end`; '' when `start` is missing. */
export function section (body: string, start: string, end: string): string {
  const i = body.indexOf(start)
  if (i < 0) return ''
  const j = body.indexOf(end, i)
  return body.slice(i, j < 0 ? undefined : j)
}

/** The href of the pager's rel="next" link, unescaped; undefined on the last page. */
export function nextLink (body: string): string | undefined {
  const m = /<a rel="next" href="([^"]+)">/.exec(body)
  return m === null ? undefined : unescape(m[1] as string)
}

/** The flash notice of the page, if any. */
export function notice (body: string): string | undefined {
  const m = /<p class="notice" role="status">([^<]*)<\/p>/.exec(body)
  return m === null ? undefined : unescape(m[1] as string)
}

/** The Location of a redirect. */
export function location (res: Response): string | undefined {
  const value = res.headers.location
  return typeof value === 'string' ? value : undefined
}

/** A link as a browser requests it: without its #fragment. */
export function withoutFragment (url: string): string {
  const i = url.indexOf('#')
  return i < 0 ? url : url.slice(0, i)
}

/** Follows a 303 like a browser: GETs its Location. */
export async function follow (browser: AdminBrowser, res: Response): Promise<Response> {
  const to = location(res)
  if (res.statusCode !== 303 || to === undefined) throw new Error(`expected a 303 with a Location, got ${res.statusCode}: ${res.body.slice(0, 300)}`)
  return await browser.get(withoutFragment(to))
}

/**
 * Walks a paged admin list from `url`, following the rel="next" links, and
 * returns what `rows` extracts from each page.
 */
export async function walkPages (browser: AdminBrowser, url: string, rows: (body: string) => string[]): Promise<{ pages: string[][], statuses: number[], links: string[] }> {
  const pages: string[][] = []
  const statuses: number[] = []
  const links: string[] = []
  let next: string | undefined = url
  while (next !== undefined && pages.length < 50) {
    const res = await browser.get(withoutFragment(next))
    statuses.push(res.statusCode)
    pages.push(rows(res.body))
    next = nextLink(res.body)
    if (next !== undefined) links.push(next)
  }
  return { pages, statuses, links }
}
