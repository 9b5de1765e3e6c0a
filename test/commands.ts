// The command endpoints as a user's client calls them (POST
// /robots/robot/command, GET /robots/{uuid}/commands), for the command tests.
import type { FastifyInstance } from 'fastify'
import type { TestUser } from './factory.js'
import { bearer } from './helper.js'

export interface CommandItem { id: string, status: string, command: string, created_at: string, delivered_at: string | null, acked_at: string | null, expires_at: string | null }

/** POST /robots/robot/command with `extra` fields (e.g. `{ ttl }`). */
export async function sendCommand (app: FastifyInstance, user: TestUser, uuid: string, command: string, extra: Record<string, unknown> = {}) {
  return await app.inject({ method: 'POST', url: '/robots/robot/command', headers: bearer(user.jwt), payload: { robot_uuid: uuid, command, ...extra } })
}

/** A command queued with `ttl` (throws unless the answer is 201 queued). */
export async function queueCommand (app: FastifyInstance, user: TestUser, uuid: string, command: string, ttl = 600): Promise<CommandItem> {
  const res = await sendCommand(app, user, uuid, command, { ttl })
  if (res.statusCode !== 201 || res.json().status !== 'queued') throw new Error(`not queued: ${res.statusCode} ${res.body}`)
  return res.json()
}

/** The robot's commands, newest first (up to 1,000). */
export async function commandItems (app: FastifyInstance, user: TestUser, uuid: string): Promise<CommandItem[]> {
  const res = await app.inject({ method: 'GET', url: `/robots/${uuid}/commands?limit=1000`, headers: bearer(user.jwt) })
  if (res.statusCode !== 200) throw new Error(`GET commands: ${res.statusCode} ${res.body}`)
  return res.json().items
}
