// Robots (docs/admin.md): list and search, create (secret generated or given,
// shown once), edit, enable/disable, rotate the secret, delete after a
// confirmation, grant and revoke users, and the robot's own page with its
// statistics, live panel and commands. Every change goes through the domain
// services, exactly as the Management API does (connections closed, caches
// invalidated, audit log written).
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { ROBOT_COMMANDS, type RobotCommand } from '../../src/contract/payloads.js'
import { Errors, isError } from '../../src/errors.js'
import { UUID_PATTERN } from '../../src/http/schemas/common.js'
import { NewRobotBody, RobotPatchBody } from '../../src/http/schemas/robots.js'
import type { ModelRef } from '../../src/contract/models.js'
import type { AuditContext, UserPrincipal } from '../../src/services/index.js'
import type { AggregateView } from '../../src/services/frames.js'
import type { ModelView } from '../../src/services/models.js'
import { MAX_GRACE_SECONDS } from '../../src/services/robots.js'
import type { AdminContext } from '../auth.js'
import { HISTORY_RANGES, historyRange, pathChart, timeChart, type ChartModel, type HistoryRange } from '../charts.js'
import { failed, fieldErrors, text, type FieldErrors } from '../forms.js'
import { render, seeOther } from '../render.js'
import { FIELD_ORDER, FIELDS, frameTable } from '../units.js'
import { EMPTY_GRANT, grantFields, ROLE_OPTIONS, tryGrant, until, type GrantFields } from './grant-form.js'
import { commandForms, formValues, modelReadings, paramsFrom, type CommandFormState } from './robot-model.js'

export const PAGE_SIZE = 20
const uuidRe = new RegExp(UUID_PATTERN)

/** The staff user as the services see them. */
export function principal (request: FastifyRequest): UserPrincipal {
  const { user } = request.admin as AdminContext
  return { id: user.id, username: user.username, isStaff: true }
}

export function actor (request: FastifyRequest): AuditContext {
  const { user } = request.admin as AdminContext
  return { actor: { id: user.id, username: user.username }, ip: request.ip }
}

/** The robot uuid of the path; anything that is not a uuid is a 404 page, like an unknown robot. */
export function uuidOf (request: FastifyRequest): string {
  const uuid = (request.params as { uuid?: string }).uuid ?? ''
  if (!uuidRe.test(uuid)) throw new Errors.ROBOT_NOT_FOUND()
  return uuid.toLowerCase()
}

/** A yes/no filter from the query string; anything else means "all". */
export function yesNo (value: unknown): boolean | undefined {
  return value === 'yes' ? true : value === 'no' ? false : undefined
}

export function query (request: FastifyRequest): Record<string, string | undefined> {
  const q = request.query as Record<string, unknown>
  const out: Record<string, string | undefined> = {}
  for (const [k, v] of Object.entries(q)) out[k] = typeof v === 'string' ? v : undefined
  return out
}

/** The live plots show the last few minutes; the page brings the stored position frames of that window. */
export const LIVE_WINDOW_MS = 5 * 60_000

/** The stored type-4 frames the model's readings are taken from: a frame may carry only some of the fields. */
const LAST_TELEMETRY = 20

/** Each field's value in the newest of `frames` (newest first) that has it. */
function latestValues (frames: ReadonlyArray<{ data: Record<string, unknown> }>): Record<string, unknown> {
  const values: Record<string, unknown> = {}
  for (const f of frames) for (const [k, v] of Object.entries(f.data)) if (!Object.hasOwn(values, k)) values[k] = v
  return values
}

/** The readings of the live panel shown before any message: position, battery and CPU (the others appear when a robot sends them). */
const FIRST_READINGS = new Set(['speed', 'position_x', 'position_y', 'angle_theta', 'battery', 'cpu'])

/** What the live panel says about the robot's connections, under "Robot: online" or "Robot: offline". */
export function presenceDetail (robot: { enabled: boolean, data_connected: boolean, command_connected: boolean }): string {
  if (!robot.enabled) return 'disabled: it cannot log in'
  if (!robot.data_connected) return 'no data connection, not listening for commands'
  return robot.command_connected ? 'data connected, listening for commands' : 'data connected, not listening for commands'
}

/** How long the command form lets a command wait for an offline robot (docs/protocol.md §5.3), in seconds. */
export const COMMAND_WAITS: ReadonlyArray<[string, number]> = [['1 minute', 60], ['10 minutes', 600], ['1 hour', 3600], ['1 day', 86400], ['7 days', 604800]]

interface RobotPageState {
  grant?: { username: string, error: string }
  grantFields?: GrantFields
  command?: { value: string, ttl?: string, error: string }
  modelCommand?: CommandFormState
  rotate?: { value: string, unit: string, error: string }
}

/** The units of the rotate form's grace field, in seconds. */
export const GRACE_UNITS = { seconds: 1, minutes: 60, hours: 3600 } as const

/**
 * The rotate form's grace period (docs/protocol.md §2.4) in seconds: an empty field
 * is 0, as before grace periods existed; anything but a whole number of
 * seconds, minutes or hours up to 7 days is an error for the field.
 */
function graceOf (body: unknown): { seconds: number } | { value: string, unit: string, error: string } {
  const value = (text(body, 'grace') ?? '').trim()
  const unit = text(body, 'grace_unit') ?? 'seconds'
  const factor = Object.hasOwn(GRACE_UNITS, unit) ? GRACE_UNITS[unit as keyof typeof GRACE_UNITS] : undefined
  const shown = { value: value.slice(0, 32), unit: factor === undefined ? 'seconds' : unit }
  if (factor === undefined) return { ...shown, error: 'Choose one of the listed units.' }
  if (value === '') return { seconds: 0 }
  if (!/^\d{1,7}$/.test(value)) return { ...shown, error: 'A whole number (0 or more), or nothing.' }
  const seconds = Number(value) * factor
  if (seconds > MAX_GRACE_SECONDS) return { ...shown, error: `At most 7 days (${MAX_GRACE_SECONDS} seconds, ${MAX_GRACE_SECONDS / 3600} hours).` }
  return { seconds }
}

/** The model select of the robot forms: "" for none, else `name@version`. */
export const modelKey = (ref: ModelRef | null): string => ref === null ? '' : `${ref.name}@${ref.version}`
const MODEL_KEY = /^([a-z][a-z0-9_-]{0,63})@(\d{1,9})$/

/**
 * The model chosen in a robot form: null for none, a version among the
 * listed ones, or an error for the field.
 */
function modelOf (body: unknown, options: ReadonlyArray<{ value: string }>): { model: ModelRef | null } | { error: string } {
  const value = text(body, 'model') ?? ''
  if (value === '') return { model: null }
  const m = MODEL_KEY.exec(value)
  if (m === null || !options.some((o) => o.value === value)) return { error: 'Choose one of the listed models.' }
  return { model: { name: m[1] as string, version: Number(m[2]) } }
}

/** A refused robot form: a serial in use, or a model version deleted since the form was shown. */
function refusedRobot (err: unknown): FieldErrors {
  if (isError(err, 'SERIAL_TAKEN')) return { serial: 'A robot with this serial already exists.' }
  if (isError(err, 'BAD_REQUEST') && /^model /.test((err as Error).message)) return { model: 'This model version no longer exists: choose another.' }
  throw err
}

const robots: FastifyPluginAsync = async (fastify) => {
  const { robots, access, users, frames, commands, groups, models } = fastify.services

  /** Every live model version, for the robot forms' select (newest version of a name first). */
  async function modelOptions (current: ModelRef | null = null): Promise<Array<{ value: string, label: string }>> {
    const all = await models.allVersions()
    const options = all.sort((a, b) => a.name === b.name ? b.version - a.version : a.name < b.name ? -1 : 1)
      .map((m) => ({ value: modelKey(m), label: `${m.name} v${m.version}${m.description === null ? '' : ` — ${m.description.slice(0, 60)}`}` }))
    // the robot's own version is live (a version in use cannot be deleted), but keep it listed whatever happens
    if (current !== null && !options.some((o) => o.value === modelKey(current))) options.unshift({ value: modelKey(current), label: `${current.name} v${current.version}` })
    return options
  }

  /** The robot's model, whole; null for none (or a version that vanished between two reads). */
  async function modelOfRobot (ref: ModelRef | null): Promise<ModelView | null> {
    if (ref === null) return null
    try {
      return await models.get(ref.name, ref.version)
    } catch (err) {
      if (isError(err, 'MODEL_NOT_FOUND')) return null
      throw err
    }
  }

  /**
   * The history charts of the robot page: two GROUP BYs in the database
   * (position and hardware frames; a third of its type-4 frames for a robot
   * with a model that has numeric fields) over the range, in the range's buckets.
   * They are aggregates like the API's, so they count against the staff
   * user's and the node's history reads (staff are users too): run one
   * after the other, so that a page takes one place at a time and works
   * with HISTORY_CONCURRENCY=1. When no place is left, or the range would
   * read too many frames, the page still shows, with a note instead of the
   * charts.
   */
  async function historyCharts (who: UserPrincipal, uuid: string, range: HistoryRange, model: ModelView | null): Promise<{ from: Date, to: Date, bucket: number, charts: ChartModel[], modelCharts: ChartModel[], unavailable?: string }> {
    const { seconds, bucket } = HISTORY_RANGES[range]
    const to = new Date()
    const from = new Date(to.getTime() - seconds * 1000)
    const span = { from, to, bucket, modelCharts: [] }
    // A model's numeric fields (docs/protocol.md §14): one more aggregate, of its type-4 frames.
    const numeric = model === null ? [] : Object.entries(model.telemetry).filter(([, d]) => d.type === 'number' || d.type === 'integer')
    let position, hardware
    let telemetry: AggregateView | undefined
    try {
      position = await frames.aggregate(who, uuid, { type: 1, from, to, bucket })
      hardware = await frames.aggregate(who, uuid, { type: 3, from, to, bucket })
      // (the robot's model may have been taken away since the page read it: then there is nothing to chart)
      if (numeric.length > 0) telemetry = await frames.aggregate(who, uuid, { type: 4, from, to, bucket }).catch((err: unknown) => { if (isError(err, 'NO_MODEL')) return undefined; throw err })
    } catch (err) {
      if (isError(err, 'HISTORY_BUSY')) return { ...span, charts: [], unavailable: 'Too many history reads are running at once (yours or this server\'s): reload the page in a few seconds to see the charts.' }
      if (isError(err, 'RANGE_TOO_LARGE')) return { ...span, charts: [], unavailable: 'This range holds too many stored frames to chart at once: choose a longer range (its buckets are whole minutes, read from per-minute rollups).' }
      throw err
    }
    return {
      ...span,
      charts: [
        timeChart({ id: 'chart-speed', title: 'Speed', unit: 'm/s', field: 'speed', buckets: position.items, ...span }),
        pathChart({ id: 'chart-path', buckets: position.items, bucket }),
        timeChart({ id: 'chart-battery', title: 'Battery', unit: '%', field: 'battery', buckets: hardware.items, ...span, fixed: [0, 100] }),
        timeChart({ id: 'chart-cpu', title: 'CPU', unit: '%', field: 'cpu', buckets: hardware.items, ...span, fixed: [0, 100] })
      ],
      // a field declared with both bounds is drawn on them, as the percentages are on 0–100
      modelCharts: numeric.map(([field, d]) => timeChart({
        id: `chart-model-${field}`,
        title: field,
        unit: d.unit ?? '',
        field,
        buckets: telemetry?.items ?? [],
        from,
        to,
        bucket,
        ...(d.minimum !== undefined && d.maximum !== undefined ? { fixed: [d.minimum, d.maximum] as [number, number] } : {})
      }))
    }
  }

  /** The robot's page, with the state of a form that failed, if any. */
  async function showRobot (request: FastifyRequest, reply: FastifyReply, uuid: string, state: RobotPageState = {}, status = 200): Promise<FastifyReply> {
    const q = query(request)
    const who = principal(request)
    const robot = await robots.get(uuid)
    const model = await modelOfRobot(robot.model)
    const range = historyRange(q.range)
    const now = Date.now()
    const [stats, path, recent, grants, previousSecretUntil, history, inGroups, lastTelemetry] = await Promise.all([
      frames.list(who, uuid, { limit: PAGE_SIZE, cursor: q.cursor === '' ? undefined : q.cursor }),
      frames.list(who, uuid, { type: 1, from: new Date(now - LIVE_WINDOW_MS), limit: 200 }),
      commands.list(who, uuid, { limit: 10 }),
      access.grantsOf(uuid),
      robots.previousSecretExpiry(uuid),
      historyCharts(who, uuid, range, model),
      groups.ofRobot(uuid),
      model === null ? undefined : frames.list(who, uuid, { type: 4, limit: LAST_TELEMETRY })
    ])
    const active = new Map((await users.byIds(grants.map((g) => g.user_id))).map((u) => [u.id, u.is_active]))
    const granted = grants.map((g) => ({ id: g.user_id, username: g.username, is_active: active.get(g.user_id) ?? true, role: g.role, until: until(g.expires_at) }))
    // by the time the server received them: the live panel's clock (live.js sets its own to the page's `now`)
    const points = path.items.map((f) => ({ t: Date.parse(f.received_at), x: f.data.position_x, y: f.data.position_y, speed: f.data.speed })).reverse()
    // A disabled robot's connections were closed when it was disabled, whatever its row says a moment later.
    const presence = { online: robot.enabled && robot.data_connected, command: robot.enabled && robot.command_connected, detail: presenceDetail(robot) }
    return await render(request, reply, 'robots/show', {
      title: robot.serial,
      robot,
      presence,
      now,
      liveWindow: LIVE_WINDOW_MS,
      fields: FIELDS,
      readings: FIELD_ORDER.map((key) => ({ key, label: FIELDS[key]?.label ?? key, unit: FIELDS[key]?.unit ?? '', shown: FIRST_READINGS.has(key) })),
      stats,
      frameTable: frameTable(stats.items),
      cursor: q.cursor,
      range,
      ranges: Object.entries(HISTORY_RANGES).map(([key, r]) => ({ key, label: r.label })),
      history,
      points,
      recent: recent.items,
      granted,
      groups: inGroups,
      roles: ROLE_OPTIONS,
      grantFields: state.grantFields ?? EMPTY_GRANT,
      commandsList: ROBOT_COMMANDS,
      commandWaits: COMMAND_WAITS,
      graceUnits: Object.keys(GRACE_UNITS),
      previousSecretUntil,
      model,
      modelReadings: model === null ? [] : modelReadings(model, latestValues(lastTelemetry?.items ?? [])),
      modelFields: model === null ? {} : Object.fromEntries(Object.entries(model.telemetry).map(([k, d]) => [k, { type: d.type }])),
      commandForms: model === null ? [] : commandForms(model, state.modelCommand),
      // a refused model command that has no form here (not a command of the robot's model, or no model)
      modelCommandErrors: state.modelCommand !== undefined && (model === null || !Object.hasOwn(model.commands, state.modelCommand.command)) ? state.modelCommand.errors : [],
      state
    }, status)
  }

  fastify.get('/robots', async (request, reply) => {
    const q = query(request)
    const filters = { q: (q.q ?? '').slice(0, 128), online: q.online, enabled: q.enabled }
    const page = await robots.list({
      q: filters.q === '' ? undefined : filters.q,
      online: yesNo(q.online),
      enabled: yesNo(q.enabled),
      cursor: q.cursor === '' ? undefined : q.cursor,
      limit: PAGE_SIZE
    })
    return await render(request, reply, 'robots/list', { title: 'Robots', page, filters, cursor: q.cursor })
  })

  fastify.get('/robots/new', async (request, reply) => {
    return await render(request, reply, 'robots/new', { title: 'Add a robot', form: { serial: '', name: '', model: '' }, models: await modelOptions(), errors: {} })
  })

  fastify.post('/robots', async (request, reply) => {
    const options = await modelOptions()
    const chosen = modelOf(request.body, options)
    const form = { serial: text(request.body, 'serial')?.trim() ?? '', name: text(request.body, 'name')?.trim() ?? '', model: 'model' in chosen ? modelKey(chosen.model) : '' }
    const secret = text(request.body, 'token') ?? ''
    const input = { serial: form.serial, name: form.name, ...(secret === '' ? {} : { token: secret }) }
    let errors: FieldErrors = fieldErrors(NewRobotBody, input)
    if ('error' in chosen) errors.model = chosen.error
    if (!failed(errors) && 'model' in chosen) {
      try {
        const created = await robots.create({ ...input, model: chosen.model }, actor(request))
        return await render(request, reply, 'robots/secret', { title: 'Robot added', robot: created, token: created.token, generated: secret === '', rotated: false }, 201)
      } catch (err) {
        errors = refusedRobot(err)
      }
    }
    // The secret is never sent back into the form.
    return await render(request, reply, 'robots/new', { title: 'Add a robot', form, models: options, errors }, 400)
  })

  fastify.get('/robots/:uuid', async (request, reply) => await showRobot(request, reply, uuidOf(request)))

  fastify.get('/robots/:uuid/edit', async (request, reply) => {
    const robot = await robots.get(uuidOf(request))
    return await render(request, reply, 'robots/edit', { title: `Edit ${robot.serial}`, robot, form: { serial: robot.serial, name: robot.name, model: modelKey(robot.model) }, models: await modelOptions(robot.model), errors: {} })
  })

  fastify.post('/robots/:uuid', async (request, reply) => {
    const uuid = uuidOf(request)
    const robot = await robots.get(uuid)
    const options = await modelOptions(robot.model)
    const chosen = modelOf(request.body, options)
    const fields = { serial: text(request.body, 'serial')?.trim() ?? '', name: text(request.body, 'name')?.trim() ?? '' }
    const form = { ...fields, model: 'model' in chosen ? modelKey(chosen.model) : '' }
    let errors = fieldErrors(RobotPatchBody, fields)
    if ('error' in chosen) errors.model = chosen.error
    if (!failed(errors) && 'model' in chosen) {
      try {
        await robots.update(uuid, { ...fields, model: chosen.model }, actor(request))
        return await seeOther(reply, `/admin/robots/${uuid}?notice=robot_updated`)
      } catch (err) {
        errors = refusedRobot(err)
      }
    }
    return await render(request, reply, 'robots/edit', { title: `Edit ${robot.serial}`, robot, form, models: options, errors }, 400)
  })

  for (const [action, enabled] of [['enable', true], ['disable', false]] as const) {
    fastify.post(`/robots/:uuid/${action}`, async (request, reply) => {
      const uuid = uuidOf(request)
      await robots.update(uuid, { enabled }, actor(request))
      return await seeOther(reply, `/admin/robots/${uuid}?notice=robot_${action}d`)
    })
  }

  fastify.post('/robots/:uuid/rotate', async (request, reply) => {
    const uuid = uuidOf(request)
    const grace = graceOf(request.body)
    if (!('seconds' in grace)) return await showRobot(request, reply, uuid, { rotate: grace }, 400)
    const { token, previousValidUntil } = await robots.rotate(uuid, actor(request), grace.seconds)
    const robot = await robots.get(uuid)
    return await render(request, reply, 'robots/secret', {
      title: 'New secret',
      robot,
      token,
      generated: true,
      rotated: true,
      previousValidUntil: previousValidUntil?.toISOString() ?? null
    })
  })

  fastify.get('/robots/:uuid/delete', async (request, reply) => {
    const robot = await robots.get(uuidOf(request))
    return await render(request, reply, 'robots/delete', { title: `Delete ${robot.serial}`, robot })
  })

  fastify.post('/robots/:uuid/delete', async (request, reply) => {
    await robots.remove(uuidOf(request), actor(request))
    return await seeOther(reply, '/admin/robots?notice=robot_deleted')
  })

  fastify.post('/robots/:uuid/access', async (request, reply) => {
    const uuid = uuidOf(request)
    const username = text(request.body, 'username')?.trim() ?? ''
    const { fields, input } = grantFields(request.body)
    const user = username === '' ? null : await users.findByUsername(username)
    if (user === null || input === undefined) {
      const error = user !== null ? '' : username === '' ? 'This field is required.' : 'No user with this username.'
      return await showRobot(request, reply, uuid, { grant: { username, error }, grantFields: fields }, 400)
    }
    const refused = await tryGrant(fields, async () => { await access.grant(user.id, uuid, input, actor(request)) })
    if (refused !== null) return await showRobot(request, reply, uuid, { grant: { username, error: '' }, grantFields: refused }, 400)
    return await seeOther(reply, `/admin/robots/${uuid}?notice=access_granted#access`)
  })

  fastify.post('/robots/:uuid/access/:userId/revoke', async (request, reply) => {
    const uuid = uuidOf(request)
    const userId = Number((request.params as { userId: string }).userId)
    if (!Number.isSafeInteger(userId) || userId < 1) throw new Errors.USER_NOT_FOUND()
    await access.revoke(userId, uuid, actor(request))
    return await seeOther(reply, `/admin/robots/${uuid}?notice=access_revoked#access`)
  })

  fastify.post('/robots/:uuid/commands', async (request, reply) => {
    const uuid = uuidOf(request)
    const command = text(request.body, 'command') ?? ''
    if (!(ROBOT_COMMANDS as readonly string[]).includes(command)) {
      return await showRobot(request, reply, uuid, { command: { value: command, error: 'Choose one of the listed commands.' } }, 400)
    }
    const wait = text(request.body, 'ttl') ?? ''
    const ttl = wait === '' ? undefined : COMMAND_WAITS.find(([, seconds]) => String(seconds) === wait)?.[1]
    if (wait !== '' && ttl === undefined) {
      return await showRobot(request, reply, uuid, { command: { value: command, ttl: wait, error: 'Choose one of the listed waits.' } }, 400)
    }
    let created
    try {
      created = await commands.issue(principal(request), uuid, command as RobotCommand, actor(request), ttl)
    } catch (err) {
      if (!isError(err, 'ROBOT_NOT_CONNECTED')) throw err
      return await showRobot(request, reply, uuid, { command: { value: command, ttl: wait, error: 'The robot is not connected to its commands topic right now: choose how long the command may wait for it.' } }, 409)
    }
    return await seeOther(reply, `/admin/robots/${uuid}?notice=${created.status === 'queued' ? 'command_queued' : 'command_sent'}#commands`)
  })

  // A model command (docs/protocol.md §14): the form's values typed by the
  // command's parameter schema, checked by the model's compiled check (each
  // mistake next to its field, the values kept), then issued with its params.
  fastify.post('/robots/:uuid/model-commands', async (request, reply) => {
    const uuid = uuidOf(request)
    const robot = await robots.get(uuid)
    const command = (text(request.body, 'command') ?? '').slice(0, 100)
    const values = formValues(request.body)
    const wait = text(request.body, 'ttl') ?? ''
    const refuse = async (errors: string[], status = 400): Promise<FastifyReply> =>
      await showRobot(request, reply, uuid, { modelCommand: { command, values, errors, ttl: wait.slice(0, 16) } }, status)
    const model = await modelOfRobot(robot.model)
    if (model === null || robot.model === null) return await refuse(['This robot has no model (any more): reload the page.'])
    // The form's inputs (an enum's option is its index) were built from the model the page showed.
    const shown = text(request.body, 'model')
    if (shown !== undefined && shown !== modelKey(robot.model)) return await refuse([`The robot's model is now ${model.name} v${model.version}, not the one this form was made for: check the values and send again.`], 409)
    const decl = Object.hasOwn(model.commands, command) ? model.commands[command] : undefined
    if (decl === undefined) return await refuse([`${command === '' ? 'The command' : `command ${command}`} is not a command of model ${model.name} v${model.version}.`])
    const ttl = wait === '' ? undefined : COMMAND_WAITS.find(([, seconds]) => String(seconds) === wait)?.[1]
    if (wait !== '' && ttl === undefined) return await refuse(['Choose one of the listed waits.'])
    const { params, errors } = paramsFrom(decl.params, values)
    if (errors.length > 0) return await refuse(errors)
    const checked = (await models.compiled(robot.model)).commands.get(command)?.checkParams(params)
    if (checked !== null && checked !== undefined) return await refuse(checked)
    let created
    try {
      created = await commands.issue(principal(request), uuid, command, actor(request), ttl, params)
    } catch (err) {
      if (isError(err, 'INVALID_PARAMS') || isError(err, 'UNKNOWN_COMMAND')) return await refuse((err as Error).message.split('; '))
      if (isError(err, 'ROBOT_NOT_CONNECTED')) return await refuse(['The robot is not connected to its commands topic right now: choose how long the command may wait for it.'], 409)
      throw err
    }
    return await seeOther(reply, `/admin/robots/${uuid}?notice=${created.status === 'queued' ? 'command_queued' : 'command_sent'}#commands`)
  })

  fastify.post('/robots/:uuid/commands/:id/cancel', async (request, reply) => {
    const uuid = uuidOf(request)
    try {
      await commands.cancel(principal(request), uuid, (request.params as { id: string }).id, actor(request))
    } catch (err) {
      if (!isError(err, 'COMMAND_FINISHED')) throw err
      return await seeOther(reply, `/admin/robots/${uuid}?notice=command_finished#commands`)
    }
    return await seeOther(reply, `/admin/robots/${uuid}?notice=command_cancelled#commands`)
  })

  // The robot's recent commands, for the live panel to follow their status.
  fastify.get('/robots/:uuid/commands.json', async (request) => {
    const page = await commands.list(principal(request), uuidOf(request), { limit: 10 })
    return { items: page.items }
  })
}

export default robots
