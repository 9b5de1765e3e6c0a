// Robot models (docs/admin.md, docs/protocol.md §14): the list (latest
// version, versions, robots using each), one model's versions, one version's
// fields and commands, a new version from JSON pasted in a textarea (every
// mistake listed next to it, the text kept), and deleting a version no robot
// uses. Every change through the models service, as the Management API.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { MODEL_NAME_PATTERN, MAX_MODEL_BYTES, type FieldDeclaration, type JsonSchema } from '../../src/contract/models.js'
import { Errors, isError } from '../../src/errors.js'
import type { ModelView } from '../../src/services/models.js'
import { text } from '../forms.js'
import { render, seeOther } from '../render.js'
import { actor } from './robots.js'

const nameRe = new RegExp(MODEL_NAME_PATTERN)

/** Notices of these pages (render.ts's list is not theirs): fixed texts, so a link cannot inject one. */
const MODEL_NOTICES: ReadonlyMap<string, string> = new Map([
  ['model_created', 'Model version created.'],
  ['model_deleted', 'Model version deleted.']
])

export function modelNotice (request: FastifyRequest): string | undefined {
  const value = (request.query as Record<string, unknown> | undefined)?.notice
  return typeof value === 'string' ? MODEL_NOTICES.get(value) : undefined
}

/** The model name and version of the path; anything else is the 404 page. */
function refOf (request: FastifyRequest): { name: string, version: number } {
  const params = request.params as { name?: string, version?: string }
  const name = params.name ?? ''
  const raw = params.version ?? ''
  const version = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN
  if (!nameRe.test(name) || !(version >= 1)) throw new Errors.MODEL_NOT_FOUND()
  return { name, version }
}

function nameOf (request: FastifyRequest): string {
  const name = (request.params as { name?: string }).name ?? ''
  if (!nameRe.test(name)) throw new Errors.MODEL_NOT_FOUND()
  return name
}

/** One telemetry field as the version page lists it. */
export interface FieldRow { name: string, type: string, range: string, unit: string, description: string }

function range (decl: FieldDeclaration): string {
  if (decl.enum !== undefined) return `one of ${decl.enum.join(', ')}`
  if (decl.type === 'string') return `at most ${decl.max_length ?? 256} characters`
  if (decl.minimum !== undefined && decl.maximum !== undefined) return `${decl.minimum} to ${decl.maximum}`
  if (decl.minimum !== undefined) return `at least ${decl.minimum}`
  if (decl.maximum !== undefined) return `at most ${decl.maximum}`
  return ''
}

export function fieldRows (model: Pick<ModelView, 'telemetry'>): FieldRow[] {
  return Object.entries(model.telemetry).map(([name, decl]) => ({ name, type: decl.type, range: range(decl), unit: decl.unit ?? '', description: decl.description ?? '' }))
}

/** One command as the version page lists it: its parameters in words. */
export interface CommandRow { name: string, description: string, timeout: string, params: Array<{ name: string, text: string, required: boolean }>, schema: string }

function schemaText (schema: JsonSchema): string {
  const parts: string[] = []
  const type = schema.type
  if (type !== undefined) parts.push(Array.isArray(type) ? type.join(' or ') : String(type))
  if (Array.isArray(schema.enum)) parts.push(`one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`)
  if (typeof schema.minimum === 'number') parts.push(`≥ ${schema.minimum}`)
  if (typeof schema.maximum === 'number') parts.push(`≤ ${schema.maximum}`)
  if (typeof schema.minLength === 'number') parts.push(schema.minLength === 1 ? 'not empty' : `at least ${schema.minLength} characters`)
  if (typeof schema.maxLength === 'number') parts.push(`at most ${schema.maxLength} characters`)
  return parts.join(', ') + (typeof schema.description === 'string' ? ` — ${schema.description}` : '')
}

export function commandRows (model: Pick<ModelView, 'commands'>): CommandRow[] {
  return Object.entries(model.commands).map(([name, decl]) => {
    const props = (decl.params?.properties ?? {}) as Record<string, JsonSchema>
    const required = Array.isArray(decl.params?.required) ? decl.params.required as string[] : []
    return {
      name,
      description: decl.description ?? '',
      timeout: decl.timeout === undefined ? '' : `${decl.timeout} s`,
      params: Object.entries(props).map(([p, s]) => ({ name: p, text: schemaText(s), required: required.includes(p) })),
      schema: decl.params === undefined ? '' : JSON.stringify(decl.params, null, 2)
    }
  })
}

/** A version as it was posted (the JSON to start the next version from). */
export function modelJson (model: ModelView): string {
  return JSON.stringify({ name: model.name, ...(model.description === null ? {} : { description: model.description }), telemetry: model.telemetry, commands: model.commands }, null, 2)
}

interface CreateForm { json: string, errors: string[] }

const models: FastifyPluginAsync = async (fastify) => {
  const { models } = fastify.services

  async function showList (request: FastifyRequest, reply: FastifyReply, form: CreateForm, status = 200): Promise<FastifyReply> {
    const [list, usage] = await Promise.all([models.list(), models.usage()])
    const items = list.map((m) => ({
      name: m.name,
      latest: m.version,
      description: m.description ?? '',
      versions: m.versions,
      robots: m.versions.reduce((n, v) => n + (usage.get(`${m.name}@${v}`) ?? 0), 0)
    }))
    return await render(request, reply, 'models/list', { title: 'Models', notice: modelNotice(request), items, form, maxBytes: MAX_MODEL_BYTES }, status)
  }

  async function showVersion (request: FastifyRequest, reply: FastifyReply, name: string, version: number, error = '', status = 200): Promise<FastifyReply> {
    const [model, usage, all] = await Promise.all([models.get(name, version), models.usage(), models.versionsOf(name)])
    return await render(request, reply, 'models/version', {
      title: `${name} v${version}`,
      notice: modelNotice(request),
      model,
      fields: fieldRows(model),
      commands: commandRows(model),
      robots: usage.get(`${name}@${version}`) ?? 0,
      latest: all[0]?.version ?? version,
      json: modelJson(model),
      error
    }, status)
  }

  fastify.get('/models', async (request, reply) => {
    // ?from=name&version=N starts the form from that version (a new version of it).
    const q = request.query as Record<string, unknown>
    let json = ''
    if (typeof q.from === 'string' && nameRe.test(q.from) && typeof q.version === 'string' && /^\d{1,9}$/.test(q.version)) {
      try {
        json = modelJson(await models.get(q.from, Number(q.version)))
      } catch (err) {
        if (!isError(err, 'MODEL_NOT_FOUND')) throw err
      }
    }
    return await showList(request, reply, { json, errors: [] })
  })

  fastify.post('/models', async (request, reply) => {
    const json = text(request.body, 'model') ?? ''
    let body: unknown
    let errors: string[] = []
    if (json.trim() === '') errors = ['Paste the model as JSON: {"name", "telemetry", "commands"}.']
    else if (Buffer.byteLength(json) > MAX_MODEL_BYTES * 2) errors = [`The text is over ${MAX_MODEL_BYTES * 2} bytes: a model is at most ${MAX_MODEL_BYTES} bytes of JSON.`]
    else {
      try {
        body = JSON.parse(json)
      } catch (err) {
        errors = [`This is not valid JSON: ${(err as Error).message}`]
      }
    }
    if (errors.length === 0) {
      try {
        const created = await models.create(body, actor(request))
        return await seeOther(reply, `/admin/models/${created.name}/versions/${created.version}?notice=model_created`)
      } catch (err) {
        if (!isError(err, 'BAD_REQUEST')) throw err
        errors = (err as Error).message.split('; ')
      }
    }
    return await showList(request, reply, { json, errors }, 400)
  })

  fastify.get('/models/:name', async (request, reply) => {
    const name = nameOf(request)
    const [versions, usage] = await Promise.all([models.versionsOf(name), models.usage()])
    return await render(request, reply, 'models/show', {
      title: name,
      notice: modelNotice(request),
      name,
      versions: versions.map((v) => ({ version: v.version, description: v.description ?? '', created_at: v.created_at, fields: Object.keys(v.telemetry).length, commands: Object.keys(v.commands).length, robots: usage.get(`${name}@${v.version}`) ?? 0 }))
    })
  })

  fastify.get('/models/:name/versions/:version', async (request, reply) => {
    const { name, version } = refOf(request)
    return await showVersion(request, reply, name, version)
  })

  fastify.post('/models/:name/versions/:version/delete', async (request, reply) => {
    const { name, version } = refOf(request)
    try {
      await models.remove(name, version, actor(request))
    } catch (err) {
      if (!isError(err, 'MODEL_IN_USE')) throw err
      const n = (await models.usage()).get(`${name}@${version}`) ?? 0
      return await showVersion(request, reply, name, version, `Not deleted: ${n === 1 ? 'a robot uses' : `${n} robots use`} ${name} v${version}. Give ${n === 1 ? 'it' : 'them'} another model (or none) on ${n === 1 ? 'its' : 'their'} edit page first.`, 409)
    }
    const left = await models.versionsOf(name).catch((err: unknown) => { if (isError(err, 'MODEL_NOT_FOUND')) return []; throw err })
    return await seeOther(reply, left.length === 0 ? '/admin/models?notice=model_deleted' : `/admin/models/${name}?notice=model_deleted`)
  })
}

export default models
