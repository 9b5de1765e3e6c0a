// Staff log-in and log-out, and the guard of every admin page (docs/admin.md).
// The session cookie holds a random token; the database keeps its SHA-256
// (services/sessions.ts). Anonymous and non-staff visitors are sent to the
// log-in form; failed log-ins are rate-limited per client address.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { isError } from '../src/errors.js'
import { isDatabaseDown } from '../src/http/plugins/error-handler.js'
import { reasonOf, summarize, UNAVAILABLE_RETRY_AFTER } from '../src/services/unavailable.js'
import { addressKey } from '../src/services/login-limits.js'
import { hashingFor } from '../src/services/secrets.js'
import type { UserView } from '../src/services/users.js'
import { text } from './forms.js'
import { render, seeOther } from './render.js'

export const SESSION_COOKIE = 'united_session'

export interface AdminContext { user: UserView, sessionId: string, token: string }

declare module 'fastify' {
  interface FastifyRequest { admin: AdminContext | null }
  interface FastifyContextConfig { public?: boolean }
}

/** The few admin routes that answer JSON (for live.js) end in .json. */
export function isJson (request: FastifyRequest): boolean {
  return (request.url.split('?')[0] ?? '').endsWith('.json')
}

/** Only a path inside the admin may follow a log-in (no open redirect). */
export function safeNext (next: unknown): string {
  if (typeof next !== 'string' || !/^\/admin(\/[!-[\]-~]*)?$/.test(next)) return '/admin'
  // Dot segments and their encodings (`/admin/../docs`, `%2e%2e`, `..%2f`)
  // would lead the browser out of /admin once it resolves them: a path is
  // followed only when it is already in its normal form, and stays inside.
  if (/%(2e|2f|5c)/i.test(next)) return '/admin'
  let url: URL
  try {
    url = new URL(next, 'http://united.invalid')
  } catch {
    return '/admin'
  }
  const normal = url.pathname + url.search
  if (url.origin !== 'http://united.invalid' || normal !== next) return '/admin'
  if (url.pathname !== '/admin' && !url.pathname.startsWith('/admin/')) return '/admin'
  if (url.pathname.startsWith('/admin/log')) return '/admin'
  return next
}

const auth: FastifyPluginAsync<{ secure: boolean | 'auto', cookieName: string }> = async (fastify, opts) => {
  const { sessions } = fastify.services
  const cookieOptions = { path: '/admin', httpOnly: true, sameSite: 'lax' as const, secure: opts.secure }
  fastify.decorateRequest('admin', null)

  fastify.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const token = request.cookies[opts.cookieName]
    if (token !== undefined) {
      const session = await sessions.resolve(token)
      if (session !== null) request.admin = { user: session.user, sessionId: session.id, token }
      else void reply.clearCookie(opts.cookieName, cookieOptions)
    }
    if (request.admin !== null || request.routeOptions.config.public === true || request.url.startsWith('/admin/static/')) return
    if (isJson(request)) {
      return await reply.code(401).send({ statusCode: 401, error: 'Unauthorized', message: 'log in to the admin first' })
    }
    const next = request.method === 'GET' ? request.url : undefined
    return await seeOther(reply, `/admin/login${next === undefined || next === '/admin' ? '' : `?next=${encodeURIComponent(next)}`}`)
  })

  // Every form is a POST and carries the CSRF token; the check runs once the body is parsed.
  fastify.addHook('preHandler', (request, reply, done) => {
    if (request.method !== 'POST') { done(); return }
    fastify.csrfProtection(request, reply, done)
  })

  fastify.get('/login', { config: { public: true } }, async (request, reply) => {
    const next = safeNext((request.query as Record<string, unknown>).next)
    if (request.admin !== null) return await seeOther(reply, next)
    return await render(request, reply, 'login', { title: 'Log in', next, username: '', error: null })
  })

  fastify.post('/login', {
    config: {
      public: true,
      rateLimit: { max: fastify.config.ADMIN_LOGIN_RATE, timeWindow: 60_000 }
    }
  }, async (request, reply) => {
    const body = request.body as Record<string, unknown> | undefined
    const username = text(body, 'username')?.trim() ?? ''
    const password = text(body, 'password') ?? ''
    const next = safeNext(text(body, 'next'))
    try {
      if (username === '' || password === '' || username.length > 150 || password.length > 1024) throw new Error('empty')
      // The password check waits in this address's line of the hashing queue.
      const { token } = await hashingFor(addressKey(request.ip), async () => await sessions.login(username, password, { ip: request.ip }))
      if (request.admin !== null) await sessions.logout(request.admin.token)
      void reply.setCookie(opts.cookieName, token, { ...cookieOptions, maxAge: fastify.config.ADMIN_SESSION_TTL })
      return await seeOther(reply, next)
    } catch (err) {
      // A database that cannot check the password is not a wrong password:
      // the form says so and asks to try again (503, Retry-After), and the
      // attempt counts as nothing.
      if (err instanceof Error && (isError(err, 'DATABASE_UNAVAILABLE') || isDatabaseDown(err))) {
        request.log.warn({ cause: reasonOf(err) ?? summarize(err) }, 'admin log-in could not be checked: the database did not answer')
        void reply.header('retry-after', String(UNAVAILABLE_RETRY_AFTER))
        return await render(request, reply, 'login', { title: 'Log in', next, username, error: 'Your log-in could not be checked just now (the database did not answer). Try again in a few seconds.' }, 503)
      }
      if (!(err instanceof Error && (err.message === 'empty' || isError(err, 'INVALID_CREDENTIALS')))) throw err
      return await render(request, reply, 'login', { title: 'Log in', next, username, error: 'Wrong username or password, or not a staff account.' }, 401)
    }
  })

  fastify.get('/logout', async (request, reply) => {
    return await render(request, reply, 'logout', { title: 'Log out' })
  })

  fastify.post('/logout', async (request, reply) => {
    if (request.admin !== null) await sessions.logout(request.admin.token)
    void reply.clearCookie(opts.cookieName, cookieOptions)
    return await seeOther(reply, '/admin/login?notice=logged_out')
  })

  // A short-lived access JWT for the live panel's MQTT-over-WebSocket log-in
  // (docs/protocol.md §2.3: username + JWT). Same-origin only: no CORS headers, and the
  // session cookie is SameSite.
  fastify.get('/token.json', async (request) => {
    const user = (request.admin as AdminContext).user
    return { username: user.username, access: await fastify.services.auth.issueAccess(user) }
  })
}

export default fp(auth, { name: 'admin-auth' })
