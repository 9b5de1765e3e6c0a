// Headless Chromium for the browser tests: the packaged build (or
// CHROMIUM_PATH), one page, and the page's errors collected.
import { existsSync } from 'node:fs'
import sparticuz from '@sparticuz/chromium'
import type { FastifyInstance } from 'fastify'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { Test } from 'tap'
import { listen } from '../mqtt.js'

/** Serves the app on an ephemeral port: its base URL. */
export async function serve (app: FastifyInstance): Promise<string> {
  await listen(app)
  const address = app.server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

/** A page of a fresh Chromium, closed with the test; `errors` collects page errors and console errors. */
export async function chromiumPage (t: Test): Promise<{ browser: Browser, page: Page, errors: string[] }> {
  // The packaged build is extracted to the temporary directory on first use.
  const own = process.env.CHROMIUM_PATH
  const executablePath = own !== undefined && own !== '' ? own : await sparticuz.executablePath()
  t.ok(existsSync(executablePath), `Chromium at ${executablePath} (from @sparticuz/chromium unless CHROMIUM_PATH is set)`)
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // As root on a machine with no outside network; launch() gives the browser
    // a fresh, empty user-data-dir of its own and removes it on close. The
    // packaged build needs no more than this: its own `args` are for AWS
    // Lambda (--single-process, --disable-web-security, site isolation off)
    // and would make this browser less like a user's.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.teardown(async () => { await browser.close() })
  const page = await browser.newPage({ viewport: { width: 1280, height: 1400 } })
  const errors: string[] = []
  page.on('pageerror', (err) => { errors.push(err.message) })
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()) })
  return { browser, page, errors }
}

/**
 * How much wider than the viewport the document is (0: no sideways
 * scrolling), and what sticks out, leaving out what is inside `scrolls`
 * (boxes that scroll by themselves: it scrolls there, not the page).
 */
export async function overflow (page: Page, scrolls = '.scroll'): Promise<{ scrollWidth: number, width: number, wide: string[] }> {
  return await page.evaluate((scrolls) => {
    const width = document.documentElement.clientWidth
    const wide: string[] = []
    for (const el of Array.from(document.body.querySelectorAll('*'))) {
      const r = el.getBoundingClientRect()
      if (r.right > width + 0.5 && el.closest(scrolls) === null) wide.push(`${el.tagName.toLowerCase()}${el.id === '' ? '' : '#' + el.id}${typeof el.className === 'string' && el.className !== '' ? '.' + el.className.split(' ').join('.') : ''} (${Math.round(r.right)})`)
    }
    return { scrollWidth: document.documentElement.scrollWidth, width, wide: wide.slice(0, 10) }
  }, scrolls)
}
