// One way to answer with a page: the view, plus what every page needs (the
// staff user, a CSRF token bound to their session, a notice, helpers).
import type { FastifyReply, FastifyRequest } from 'fastify'
import { helpers } from './helpers.js'

/** Fixed texts for ?notice=…, so a link can never inject its own message. */
const NOTICES: ReadonlyMap<string, string> = new Map(Object.entries({
  logged_out: 'You are logged out.',
  password_changed: 'Your password was changed: log in again with the new one.',
  robot_updated: 'Robot saved.',
  robot_enabled: 'Robot enabled.',
  robot_disabled: 'Robot disabled: its connections were closed and its tokens voided.',
  robot_deleted: 'Robot deleted.',
  access_granted: 'Access granted.',
  access_revoked: 'Access revoked.',
  command_sent: 'Command sent.',
  command_queued: 'The robot is not listening for commands: the command waits for it.',
  command_cancelled: 'Command cancelled.',
  command_finished: 'That command was already delivered, finished or cancelled.',
  user_created: 'User added.',
  user_updated: 'User saved.',
  user_deleted: 'User deleted.',
  group_created: 'Group created.',
  group_deleted: 'Group deleted.',
  group_robot_added: 'Robot added to the group.',
  group_robot_removed: 'Robot removed from the group.',
  group_granted: 'Group granted.',
  group_revoked: 'Group grant revoked.',
  api_key_deleted: 'API key deleted.'
}))

export async function render (request: FastifyRequest, reply: FastifyReply, template: string, data: Record<string, unknown> = {}, status = 200): Promise<FastifyReply> {
  const query = request.query as Record<string, unknown> | undefined
  // A Map, not an object: `?notice=constructor` must not find Object's prototype.
  const notice = typeof query?.notice === 'string' ? NOTICES.get(query.notice) : undefined
  const csrf = reply.generateCsrf({ userInfo: request.admin?.sessionId ?? 'anonymous' })
  const html = await reply.viewAsync(template, { title: '', notice, ...data, me: request.admin?.user ?? null, csrf, h: helpers, path: request.url })
  return await reply.code(status).type('text/html; charset=utf-8').send(html)
}

/** 303 See Other: after a POST, the browser GETs the next page (no resubmission on reload). */
export async function seeOther (reply: FastifyReply, url: string): Promise<FastifyReply> {
  return await reply.redirect(url, 303)
}
