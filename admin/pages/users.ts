// Users (docs/admin.md): list, create, edit (password, staff, active), delete
// after a confirmation, and the robots each can access. Through the domain
// services, as the Management API: deactivating closes MQTT connections and
// ends sessions, grants and revocations reach the broker at once.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { Errors, isError } from '../../src/errors.js'
import { UUID_PATTERN } from '../../src/http/schemas/common.js'
import { NewUserBody, UserPatchBody } from '../../src/http/schemas/users.js'
import type { UserView } from '../../src/services/users.js'
import type { AdminContext } from '../auth.js'
import { checked, failed, fieldErrors, text, type FieldErrors } from '../forms.js'
import { render, seeOther } from '../render.js'
import { EMPTY_GRANT, grantFields, ROLE_OPTIONS, tryGrant, until, type GrantFields } from './grant-form.js'
import { actor, PAGE_SIZE, uuidOf } from './robots.js'

function idOf (request: FastifyRequest): number {
  const raw = (request.params as { id?: string }).id ?? ''
  const id = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN
  if (!Number.isSafeInteger(id) || id < 1) throw new Errors.USER_NOT_FOUND()
  return id
}

const keyIdRe = new RegExp(UUID_PATTERN)

const isSelf = (request: FastifyRequest, id: number): boolean => (request.admin as AdminContext).user.id === id

interface UserForm { password: string, is_staff: boolean, is_active: boolean }

const users: FastifyPluginAsync = async (fastify) => {
  const { users, robots, access, sessions, groups, apiKeys } = fastify.services

  async function showUser (request: FastifyRequest, reply: FastifyReply, user: UserView, state: { form?: UserForm, errors?: FieldErrors, grant?: { serial: string, error: string }, grantFields?: GrantFields } = {}, status = 200): Promise<FastifyReply> {
    // The direct grants, with the serial and name of their robots (the
    // visible list also holds the robots of the user's groups).
    const [visible, view, groupGrants, keys] = await Promise.all([robots.list({ visibleTo: user.id, limit: 1000 }), access.viewOf(user.id), groups.grantsOfUser(user.id), apiKeys.listOf(user.id)])
    const direct = new Map(view.direct.map((g) => [g.robotUuid, g]))
    const granted = visible.items.flatMap((r) => {
      const g = direct.get(r.uuid)
      return g === undefined ? [] : [{ uuid: r.uuid, serial: r.serial, name: r.name, role: g.role, until: until(g.expiresAt) }]
    })
    return await render(request, reply, 'users/show', {
      title: user.username,
      user,
      self: isSelf(request, user.id),
      form: state.form ?? { password: '', is_staff: user.is_staff, is_active: user.is_active },
      errors: state.errors ?? {},
      grant: state.grant ?? { serial: '', error: '' },
      grantFields: state.grantFields ?? EMPTY_GRANT,
      roles: ROLE_OPTIONS,
      robots: granted,
      groupGrants,
      keys
    }, status)
  }

  fastify.get('/users', async (request, reply) => {
    const cursor = (request.query as Record<string, unknown>).cursor
    const page = await users.list({ cursor: typeof cursor === 'string' && cursor !== '' ? cursor : undefined, limit: PAGE_SIZE })
    return await render(request, reply, 'users/list', { title: 'Users', page, cursor })
  })

  fastify.get('/users/new', async (request, reply) => {
    return await render(request, reply, 'users/new', { title: 'Add a user', form: { username: '', is_staff: false }, errors: {} })
  })

  fastify.post('/users', async (request, reply) => {
    const form = { username: text(request.body, 'username')?.trim() ?? '', is_staff: checked(request.body, 'is_staff') }
    const password = text(request.body, 'password') ?? ''
    let errors = fieldErrors(NewUserBody, { ...form, password })
    if (!failed(errors)) {
      try {
        const user = await users.create({ username: form.username, password, isStaff: form.is_staff }, actor(request))
        return await seeOther(reply, `/admin/users/${user.id}?notice=user_created`)
      } catch (err) {
        if (!isError(err, 'USERNAME_TAKEN')) throw err
        errors = { username: 'A user with this username already exists.' }
      }
    }
    // The password is never sent back into the form.
    return await render(request, reply, 'users/new', { title: 'Add a user', form, errors }, 400)
  })

  fastify.get('/users/:id', async (request, reply) => await showUser(request, reply, await users.get(idOf(request))))

  fastify.post('/users/:id', async (request, reply) => {
    const id = idOf(request)
    const user = await users.get(id)
    const form: UserForm = { password: text(request.body, 'password') ?? '', is_staff: checked(request.body, 'is_staff'), is_active: checked(request.body, 'is_active') }
    const patch = { is_staff: form.is_staff, is_active: form.is_active, ...(form.password === '' ? {} : { password: form.password }) }
    const errors = fieldErrors(UserPatchBody, patch)
    // Staff cannot lock themselves out of the admin.
    if (isSelf(request, id) && !form.is_staff) errors.is_staff ??= 'You cannot remove your own staff status.'
    if (isSelf(request, id) && !form.is_active) errors.is_active ??= 'You cannot deactivate yourself.'
    if (failed(errors)) return await showUser(request, reply, user, { form: { ...form, password: '' }, errors }, 400)
    await users.update(id, { isStaff: patch.is_staff, isActive: patch.is_active, password: patch.password }, actor(request))
    if (patch.password !== undefined) {
      // A new password ends the user's sessions everywhere, this one included
      // (the passwordChanged listener does too; awaiting it here means the
      // redirect below cannot race it).
      await sessions.endAll(id)
      if (isSelf(request, id)) return await seeOther(reply, '/admin/login?notice=password_changed')
    }
    return await seeOther(reply, `/admin/users/${id}?notice=user_updated`)
  })

  fastify.get('/users/:id/delete', async (request, reply) => {
    const user = await users.get(idOf(request))
    return await render(request, reply, 'users/delete', { title: `Delete ${user.username}`, user, self: isSelf(request, user.id) })
  })

  fastify.post('/users/:id/delete', async (request, reply) => {
    const id = idOf(request)
    if (isSelf(request, id)) {
      const user = await users.get(id)
      return await render(request, reply, 'users/delete', { title: `Delete ${user.username}`, user, self: true }, 400)
    }
    await users.remove(id, actor(request))
    return await seeOther(reply, '/admin/users?notice=user_deleted')
  })

  fastify.post('/users/:id/access', async (request, reply) => {
    const user = await users.get(idOf(request))
    const serial = text(request.body, 'serial')?.trim() ?? ''
    const { fields, input } = grantFields(request.body)
    const robot = serial === '' ? null : await robots.findBySerial(serial)
    if (robot === null || input === undefined) {
      const error = robot !== null ? '' : serial === '' ? 'This field is required.' : 'No robot with this serial.'
      return await showUser(request, reply, user, { grant: { serial, error }, grantFields: fields }, 400)
    }
    const refused = await tryGrant(fields, async () => { await access.grant(user.id, robot.uuid, input, actor(request)) })
    if (refused !== null) return await showUser(request, reply, user, { grant: { serial, error: '' }, grantFields: refused }, 400)
    return await seeOther(reply, `/admin/users/${user.id}?notice=access_granted#access`)
  })

  // Staff delete a user's API key (docs/protocol.md §13.4): it stops working at once, on every node.
  fastify.post('/users/:id/api_keys/:keyId/delete', async (request, reply) => {
    const id = idOf(request)
    const keyId = (request.params as { keyId?: string }).keyId ?? ''
    if (!keyIdRe.test(keyId)) throw new Errors.API_KEY_NOT_FOUND()
    await users.get(id)
    await apiKeys.removeFor(id, keyId.toLowerCase(), actor(request))
    return await seeOther(reply, `/admin/users/${id}?notice=api_key_deleted#api-keys`)
  })

  fastify.post('/users/:id/access/:uuid/revoke', async (request, reply) => {
    const id = idOf(request)
    const uuid = uuidOf(request)
    await access.revoke(id, uuid, actor(request))
    return await seeOther(reply, `/admin/users/${id}?notice=access_revoked#access`)
  })
}

export default users
