// Groups of robots (docs/admin.md, docs/protocol.md §13.2): the list with a
// create form, one group's robots (add by serial or uuid, remove) and users
// (grant with a role and an optional end, revoke), deletion after a
// confirmation. Every change through the groups service, as the Management
// API: audited, and at once in every node's broker.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { Errors, isError } from '../../src/errors.js'
import { UUID_PATTERN } from '../../src/http/schemas/common.js'
import { NewGroupBody } from '../../src/http/schemas/robots.js'
import { failed, fieldErrors, text, type FieldErrors } from '../forms.js'
import { render, seeOther } from '../render.js'
import { EMPTY_GRANT, grantFields, ROLE_OPTIONS, tryGrant, until, type GrantFields } from './grant-form.js'
import { actor } from './robots.js'

const uuidRe = new RegExp(UUID_PATTERN)

/** A positive integer path parameter; anything else is the 404 page `notFound` gives. */
function numberOf (request: FastifyRequest, name: string, notFound: () => Error): number {
  const raw = (request.params as Record<string, string | undefined>)[name] ?? ''
  const id = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN
  if (!Number.isSafeInteger(id) || id < 1) throw notFound()
  return id
}

const groupIdOf = (request: FastifyRequest): number => numberOf(request, 'id', () => new Errors.GROUP_NOT_FOUND())

interface GroupPageState {
  robot?: { value: string, error: string }
  grant?: { username: string, error: string }
  grantFields?: GrantFields
}

const groups: FastifyPluginAsync = async (fastify) => {
  const { groups, robots, users } = fastify.services

  async function showList (request: FastifyRequest, reply: FastifyReply, form: { name: string }, errors: FieldErrors, status = 200): Promise<FastifyReply> {
    const [list, n] = await Promise.all([groups.list(), groups.counts()])
    const items = list.map((g) => ({ ...g, robots: n.robots.get(g.id) ?? 0, users: n.users.get(g.id) ?? 0 }))
    return await render(request, reply, 'groups/list', { title: 'Groups', items, form, errors }, status)
  }

  async function showGroup (request: FastifyRequest, reply: FastifyReply, id: number, state: GroupPageState = {}, status = 200): Promise<FastifyReply> {
    const group = await groups.get(id)
    return await render(request, reply, 'groups/show', {
      title: group.name,
      group,
      robots: await groups.robotsIn(group.id),
      members: group.users.map((u) => ({ ...u, until: until(u.expires_at) })),
      robotForm: state.robot ?? { value: '', error: '' },
      grant: state.grant ?? { username: '', error: '' },
      grantFields: state.grantFields ?? EMPTY_GRANT,
      roles: ROLE_OPTIONS
    }, status)
  }

  fastify.get('/groups', async (request, reply) => await showList(request, reply, { name: '' }, {}))

  fastify.post('/groups', async (request, reply) => {
    const form = { name: text(request.body, 'name')?.trim() ?? '' }
    let errors = fieldErrors(NewGroupBody, form)
    if (!failed(errors)) {
      try {
        const created = await groups.create(form.name, actor(request))
        return await seeOther(reply, `/admin/groups/${created.id}?notice=group_created`)
      } catch (err) {
        if (!isError(err, 'GROUP_NAME_TAKEN')) throw err
        errors = { name: 'A group with this name already exists.' }
      }
    }
    return await showList(request, reply, form, errors, 400)
  })

  fastify.get('/groups/:id', async (request, reply) => await showGroup(request, reply, groupIdOf(request)))

  fastify.get('/groups/:id/delete', async (request, reply) => {
    const group = await groups.get(groupIdOf(request))
    return await render(request, reply, 'groups/delete', { title: `Delete ${group.name}`, group })
  })

  fastify.post('/groups/:id/delete', async (request, reply) => {
    await groups.remove(groupIdOf(request), actor(request))
    return await seeOther(reply, '/admin/groups?notice=group_deleted')
  })

  fastify.post('/groups/:id/robots', async (request, reply) => {
    const id = groupIdOf(request)
    await groups.get(id)
    const value = (text(request.body, 'robot') ?? '').trim().slice(0, 200)
    // A uuid first, then a serial (the user page grants by serial too).
    const uuid = uuidRe.test(value) ? value.toLowerCase() : value === '' ? undefined : (await robots.findBySerial(value))?.uuid
    if (value === '' || uuid === undefined) {
      return await showGroup(request, reply, id, { robot: { value, error: value === '' ? 'This field is required.' : 'No robot with this serial or uuid.' } }, 400)
    }
    try {
      await groups.addRobot(id, uuid, actor(request))
    } catch (err) {
      if (!isError(err, 'ROBOT_NOT_FOUND')) throw err
      // A uuid that is no robot's may still be some robot's serial.
      const bySerial = await robots.findBySerial(value)
      if (bySerial === null) return await showGroup(request, reply, id, { robot: { value, error: 'No robot with this serial or uuid.' } }, 400)
      await groups.addRobot(id, bySerial.uuid, actor(request))
    }
    return await seeOther(reply, `/admin/groups/${id}?notice=group_robot_added#robots`)
  })

  fastify.post('/groups/:id/robots/:uuid/remove', async (request, reply) => {
    const id = groupIdOf(request)
    const uuid = (request.params as { uuid?: string }).uuid ?? ''
    if (!uuidRe.test(uuid)) throw new Errors.ROBOT_NOT_FOUND()
    await groups.removeRobot(id, uuid.toLowerCase(), actor(request))
    return await seeOther(reply, `/admin/groups/${id}?notice=group_robot_removed#robots`)
  })

  fastify.post('/groups/:id/users', async (request, reply) => {
    const id = groupIdOf(request)
    await groups.get(id)
    const username = text(request.body, 'username')?.trim() ?? ''
    const { fields, input } = grantFields(request.body)
    const user = username === '' ? null : await users.findByUsername(username)
    if (user === null || input === undefined) {
      const error = user !== null ? '' : username === '' ? 'This field is required.' : 'No user with this username.'
      return await showGroup(request, reply, id, { grant: { username, error }, grantFields: fields }, 400)
    }
    const refused = await tryGrant(fields, async () => { await groups.grant(id, user.id, input, actor(request)) })
    if (refused !== null) return await showGroup(request, reply, id, { grant: { username, error: '' }, grantFields: refused }, 400)
    return await seeOther(reply, `/admin/groups/${id}?notice=group_granted#users`)
  })

  fastify.post('/groups/:id/users/:userId/revoke', async (request, reply) => {
    const id = groupIdOf(request)
    const userId = numberOf(request, 'userId', () => new Errors.USER_NOT_FOUND())
    await groups.revoke(id, userId, actor(request))
    return await seeOther(reply, `/admin/groups/${id}?notice=group_revoked#users`)
  })
}

export default groups
