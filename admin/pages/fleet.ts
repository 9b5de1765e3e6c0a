// GET /admin/fleet (issue 26): every robot's presence, state and last
// statistics on one page, 50 robots a page, filtered by serial or name,
// presence and state. The server renders each row from the database
// (presence, state, last seen); fleet.js then subscribes to the `stats` and
// `presence` of the robots of this page only (retained: the last values
// arrive at once) and updates the rows as messages come. A page never
// subscribes to `robots/+/…`: a fleet of 10,000 robots at 10 Hz would send
// the browser 100,000 messages a second for the 50 it shows.
import type { FastifyPluginAsync } from 'fastify'
import { ROBOT_COMMANDS } from '../../src/contract/payloads.js'
import { render } from '../render.js'
import { FIELDS, heading, type FieldFormat } from '../units.js'
import { query, yesNo } from './robots.js'

export const FLEET_PAGE_SIZE = 50

/** The statistics columns, in the order of the cells fleet.js fills (their class is the field). */
const COLUMNS = ['speed', 'position_x', 'position_y', 'battery', 'cpu'].map((key) => ({ key, heading: heading(FIELDS[key] as FieldFormat) }))

const fleet: FastifyPluginAsync = async (fastify) => {
  const { robots } = fastify.services

  fastify.get('/fleet', async (request, reply) => {
    const q = query(request)
    const state = (ROBOT_COMMANDS as readonly string[]).includes(q.state ?? '') ? q.state : undefined
    const filters = { q: (q.q ?? '').slice(0, 128), online: yesNo(q.online) === undefined ? undefined : q.online, state }
    const page = await robots.list({
      q: filters.q === '' ? undefined : filters.q,
      online: yesNo(q.online),
      state,
      cursor: q.cursor === '' ? undefined : q.cursor,
      limit: FLEET_PAGE_SIZE
    })
    return await render(request, reply, 'fleet', { title: 'Fleet', page, filters, cursor: q.cursor, states: ROBOT_COMMANDS, now: Date.now(), fields: FIELDS, columns: COLUMNS })
  })
}

export default fleet
