// The server-rendered admin pages (docs/admin.md), an encapsulated context:
// cookies, CSRF, the log-in rate limit, Eta views (auto-escaping), static
// files, security headers, the staff session guard and HTML error pages.
import { createHmac } from 'node:crypto'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import cookie from '@fastify/cookie'
import csrf from '@fastify/csrf-protection'
import rateLimit from '@fastify/rate-limit'
import fastifyStatic from '@fastify/static'
import view from '@fastify/view'
import { Eta } from 'eta'
import type { FastifyError, FastifyPluginAsync } from 'fastify'
import { isDatabaseDown } from '../src/http/plugins/error-handler.js'
import auth, { isJson, SESSION_COOKIE } from './auth.js'
import audit from './pages/audit.js'
import dashboard from './pages/dashboard.js'
import fleet from './pages/fleet.js'
import groups from './pages/groups.js'
import models from './pages/models.js'
import robots from './pages/robots.js'
import users from './pages/users.js'
import { render } from './render.js'

/** admin/views and admin/public, from the sources (tests) or from dist/admin (built). */
function assetDir (name: string): string {
  for (const rel of [`./${name}`, `../../admin/${name}`]) {
    const dir = fileURLToPath(new URL(rel, import.meta.url))
    if (existsSync(dir)) return dir
  }
  throw new Error(`admin/${name} not found`)
}

/** A key for one purpose, derived from JWT_SECRET (one secret to configure, separate keys in use). */
function deriveKey (secret: string, purpose: string): string {
  return createHmac('sha256', secret).update(`united admin ${purpose}`).digest('base64url')
}

const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // mqtt.js runs its keep-alive timers in a worker made from a blob, so that
  // a background tab does not miss its pings.
  "worker-src 'self' blob:",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "object-src 'none'"
].join('; ')

const site: FastifyPluginAsync = async (fastify) => {
  const { config } = fastify
  const secure = config.PUBLIC_URL?.startsWith('https:') === true ? true : 'auto'

  // Pages, forms and their little JSON helpers (token.json, commands.json) are
  // not API: they stay out of the OpenAPI document at /docs. The Management
  // API (admin/api, its own context) is documented as before.
  fastify.addHook('onRoute', (route) => {
    route.schema = { ...route.schema, hide: true }
  })

  await fastify.register(cookie, { secret: deriveKey(config.JWT_SECRET as string, 'cookies') })
  await fastify.register(csrf, {
    sessionPlugin: '@fastify/cookie',
    cookieKey: 'united_csrf',
    cookieOpts: { path: '/admin', sameSite: 'strict', httpOnly: true, signed: true, secure },
    // Tokens are bound to the session: a token from before log-in (or from
    // another session) is refused after it.
    getUserInfo: (request) => request.admin?.sessionId ?? 'anonymous',
    csrfOpts: { hmacKey: deriveKey(config.JWT_SECRET as string, 'csrf') }
  })
  await fastify.register(rateLimit, { global: false })
  await fastify.register(view, {
    engine: { eta: new Eta({ autoEscape: true, autoTrim: [false, 'nl'] }) },
    templates: assetDir('views'),
    production: config.NODE_ENV === 'production'
  })
  await fastify.register(fastifyStatic, {
    root: assetDir('public'),
    prefix: '/static/',
    decorateReply: false,
    maxAge: '1h'
  })
  // The browser bundle of mqtt.js, served by the app itself (no CDN).
  // (mqtt's exports map "./dist/*" to "./dist/*.js".)
  const mqttBundle = dirname(createRequire(import.meta.url).resolve('mqtt/dist/mqtt.min'))
  await fastify.register(fastifyStatic, {
    root: mqttBundle,
    prefix: '/static/vendor/',
    decorateReply: false,
    maxAge: '1h',
    allowedPath: (path) => path === '/mqtt.min.js'
  })

  fastify.addHook('onSend', async (request, reply, payload) => {
    reply.header('content-security-policy', CSP)
    reply.header('x-content-type-options', 'nosniff')
    reply.header('x-frame-options', 'DENY')
    reply.header('referrer-policy', 'same-origin')
    if (!request.url.startsWith('/admin/static/')) reply.header('cache-control', 'no-store')
    return payload
  })

  fastify.setErrorHandler(async (err: FastifyError, request, reply) => {
    let status = err.statusCode ?? 500
    if (status < 400 || status > 599) status = 500
    let title = 'Something went wrong'
    let message = 'The server could not complete this request. It has been logged.'
    if (isDatabaseDown(err)) {
      status = 503
      title = 'Database unavailable'
      message = 'The database cannot be reached right now. Nothing was changed; try again in a moment.'
    } else if (err.code === 'FST_CSRF_INVALID_TOKEN' || err.code === 'FST_CSRF_MISSING_SECRET') {
      title = 'This form has expired'
      message = 'The form was not accepted because its security token is missing or out of date. Go back, reload the page and try again.'
    } else if (status === 429) {
      title = 'Too many attempts'
      message = 'Too many log-in attempts from this address. Wait a minute and try again.'
    } else if (status === 404) {
      title = 'Not found'
      message = 'There is nothing here, or it was deleted.'
    } else if (status < 500) {
      title = 'Bad request'
      message = err.message
    }
    if (status >= 500) request.log.error({ err }, 'admin page failed')
    else request.log.info({ code: err.code, statusCode: status }, 'admin request rejected')
    if (isJson(request)) {
      return await reply.code(status).send({ statusCode: status, error: title, message })
    }
    return await render(request, reply, 'error', { title, message, status }, status)
  })

  fastify.setNotFoundHandler(async (request, reply) => {
    return await render(request, reply, 'error', { title: 'Not found', message: 'There is nothing here, or it was deleted.', status: 404 }, 404)
  })

  await fastify.register(auth, { secure, cookieName: SESSION_COOKIE })
  await fastify.register(dashboard)
  await fastify.register(fleet)
  await fastify.register(robots)
  await fastify.register(users)
  await fastify.register(groups)
  await fastify.register(models)
  await fastify.register(audit)
}

export default site
