// A tiny cookie-keeping client for the admin pages over app.inject(): it
// remembers cookies like a browser, and fills each form's CSRF token from the
// last page it loaded, the way a user submits the form they are looking at.
import type { FastifyInstance } from 'fastify'
import type { Response } from 'light-my-request'
import type { Test } from 'tap'
import { createStaff, type TestUser } from '../factory.js'
import { build } from '../helper.js'

export class AdminBrowser {
  readonly cookies = new Map<string, string>()
  /** The CSRF token of the last HTML page loaded. */
  csrf: string | undefined
  last: Response | undefined

  constructor (readonly app: FastifyInstance) {}

  private remember (res: Response): Response {
    for (const c of res.cookies as Array<{ name: string, value: string, maxAge?: number, expires?: Date }>) {
      const gone = c.value === '' || c.maxAge === 0 || (c.expires !== undefined && c.expires.getTime() <= Date.now())
      if (gone) this.cookies.delete(c.name)
      else this.cookies.set(c.name, c.value)
    }
    const token = /name="_csrf" value="([^"]+)"/.exec(res.body)?.[1]
    if (token !== undefined) this.csrf = token
    this.last = res
    return res
  }

  private get cookieHeader (): Record<string, string> {
    if (this.cookies.size === 0) return {}
    return { cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') }
  }

  async get (url: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.remember(await this.app.inject({ method: 'GET', url, headers: { ...this.cookieHeader, ...headers } }))
  }

  /**
   * POSTs a form. The CSRF token of the last page is added unless the form
   * sets `_csrf` itself (pass `_csrf: null` to leave it out).
   */
  async post (url: string, form: Record<string, string | null | undefined> = {}): Promise<Response> {
    const fields: Record<string, string> = {}
    if (!('_csrf' in form) && this.csrf !== undefined) fields._csrf = this.csrf
    for (const [k, v] of Object.entries(form)) if (typeof v === 'string') fields[k] = v
    return this.remember(await this.app.inject({
      method: 'POST',
      url,
      headers: { ...this.cookieHeader, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams(fields).toString()
    }))
  }

  /** Loads the log-in form and submits it; returns the POST's response (303 on success). */
  async login (username: string, password: string): Promise<Response> {
    await this.get('/admin/login')
    return await this.post('/admin/login', { username, password })
  }
}

/** A logged-in staff browser. */
export async function staffBrowser (app: FastifyInstance, user: { username: string, password: string }): Promise<AdminBrowser> {
  const browser = new AdminBrowser(app)
  const res = await browser.login(user.username, user.password)
  if (res.statusCode !== 303) throw new Error(`log-in failed: ${res.statusCode} ${res.body.slice(0, 200)}`)
  return browser
}

export interface Staffed { app: FastifyInstance, staff: TestUser, browser: AdminBrowser }

/** A fresh app, a staff user and their logged-in browser. */
export async function staffSetup (t: Test): Promise<Staffed> {
  const app = await build(t)
  const staff = await createStaff(app)
  return { app, staff, browser: await staffBrowser(app, staff) }
}
