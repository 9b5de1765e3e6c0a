// Robot models (docs/protocol.md §14): staff declare versions; robots name one;
// the broker and the command endpoint check frames and parameters with each
// version's validators, compiled once per node and kept (versions never
// change, and a deleted version's number is never given out again, so a
// compiled copy can never go stale).
import { Op, UniqueConstraintError, type Transaction } from 'sequelize'
import { checkModel, compileModel, type CompiledModel, type ModelDefinition, type ModelRef } from '../contract/models.js'
import type { Database } from '../db/index.js'
import type { RobotModel } from '../db/models/index.js'
import { Errors } from '../errors.js'
import type { AuditContext, AuditService } from './audit.js'

export interface ModelView {
  name: string
  version: number
  description: string | null
  telemetry: ModelDefinition['telemetry']
  commands: ModelDefinition['commands']
  created_at: string
}
/** A model in the list: its latest version, and the numbers of all its live versions. */
export interface ModelListItem extends ModelView { versions: number[] }

/** How many compiled versions a node keeps at most (the least recently used go first). */
const COMPILED_CACHE = 500

function definitionOf (row: Pick<RobotModel, 'name' | 'description' | 'definition'>): ModelDefinition {
  const { telemetry, commands } = JSON.parse(row.definition) as Pick<ModelDefinition, 'telemetry' | 'commands'>
  return { name: row.name, ...(row.description === null ? {} : { description: row.description }), telemetry, commands }
}

function modelView (row: RobotModel): ModelView {
  const def = definitionOf(row)
  return { name: row.name, version: row.version, description: row.description, telemetry: def.telemetry, commands: def.commands, created_at: row.createdAt.toISOString() }
}

export function createModelService ({ db, audit }: { db: Database, audit: AuditService }) {
  const { RobotModel, Robot } = db.models
  const compiled = new Map<string, Promise<CompiledModel>>()

  async function row (name: string, version: number, transaction?: Transaction): Promise<RobotModel> {
    const found = await RobotModel.findOne({ where: { name, version, deletedAt: null }, transaction, ...(transaction === undefined || db.dialect !== 'postgres' ? {} : { lock: transaction.LOCK.SHARE }) })
    if (found === null) throw new Errors.MODEL_NOT_FOUND()
    return found
  }

  return {
    /** Creates the next version of `body.name` (version 1 for a new name). Invalid → 400 naming every mistake. */
    async create (body: unknown, ctx: AuditContext): Promise<ModelView> {
      const checked = checkModel(body)
      if (!checked.ok) throw new Errors.BAD_REQUEST(checked.errors.slice(0, 20).join('; ') + (checked.errors.length > 20 ? `; and ${checked.errors.length - 20} more` : ''))
      const { model } = checked
      const definition = JSON.stringify({ telemetry: model.telemetry, commands: model.commands })
      // Two posts of one name at once may pick the same number: the unique
      // index refuses the second, which takes the next number.
      for (let attempt = 1; ; attempt++) {
        try {
          return await db.transaction(async (transaction) => {
            const latest = await RobotModel.max('version', { where: { name: model.name }, transaction }) as number | null
            const created = await RobotModel.create({ name: model.name, version: (latest ?? 0) + 1, description: model.description ?? null, definition }, { transaction })
            await audit.record(ctx, { action: 'model.created', details: { model: created.name, version: created.version } }, transaction)
            return modelView(created)
          })
        } catch (err) {
          if (!(err instanceof UniqueConstraintError) || attempt >= 5) throw err
        }
      }
    },

    /** Every model by name: its latest live version, with the numbers of its live versions. */
    async list (): Promise<ModelListItem[]> {
      const rows = await RobotModel.findAll({ where: { deletedAt: null }, order: [['name', 'ASC'], ['version', 'ASC']] })
      const byName = new Map<string, { latest: RobotModel, versions: number[] }>()
      for (const r of rows) {
        const entry = byName.get(r.name)
        if (entry === undefined) byName.set(r.name, { latest: r, versions: [r.version] })
        else { entry.latest = r; entry.versions.push(r.version) }
      }
      return [...byName.values()].map(({ latest, versions }) => ({ ...modelView(latest), versions }))
    },

    /** Every live version of every model, oldest first: what the AsyncAPI document describes. */
    async allVersions (): Promise<ModelView[]> {
      return (await RobotModel.findAll({ where: { deletedAt: null }, order: [['name', 'ASC'], ['version', 'ASC']] })).map(modelView)
    },

    async get (name: string, version: number): Promise<ModelView> {
      return modelView(await row(name, version))
    },

    /** The live versions of one model, newest first (404 when it has none). */
    async versionsOf (name: string): Promise<ModelView[]> {
      const rows = await RobotModel.findAll({ where: { name, deletedAt: null }, order: [['version', 'DESC']] })
      if (rows.length === 0) throw new Errors.MODEL_NOT_FOUND()
      return rows.map(modelView)
    },

    /** Deletes a version no robot uses (409 UNITED_MODEL_IN_USE otherwise). Its number is not reused. */
    async remove (name: string, version: number, ctx: AuditContext): Promise<void> {
      await db.transaction(async (transaction) => {
        // FOR UPDATE: a robot being given this version at the same moment waits (it reads the row FOR SHARE)
        const found = await RobotModel.findOne({ where: { name, version, deletedAt: null }, transaction, ...(db.dialect === 'postgres' ? { lock: transaction.LOCK.UPDATE } : {}) })
        if (found === null) throw new Errors.MODEL_NOT_FOUND()
        const users = await Robot.count({ where: { modelName: name, modelVersion: version }, transaction })
        if (users > 0) throw new Errors.MODEL_IN_USE()
        found.deletedAt = new Date()
        await found.save({ transaction })
        await audit.record(ctx, { action: 'model.deleted', details: { model: name, version } }, transaction)
      })
    },

    /**
     * Checks, inside the caller's transaction, that a live version exists,
     * and holds it (FOR SHARE on PostgreSQL) so that it cannot be deleted
     * before the caller's robot row names it.
     */
    async hold (ref: ModelRef, transaction: Transaction): Promise<void> {
      await row(ref.name, ref.version, transaction).catch((err: unknown) => {
        if (err instanceof Errors.MODEL_NOT_FOUND) throw new Errors.BAD_REQUEST(`model ${ref.name} version ${ref.version} does not exist`)
        throw err
      })
    },

    /**
     * The compiled validators of a version, compiled at most once per node.
     * A version deleted since a robot named it still compiles: robots never
     * name deleted versions, and a compiled copy is only ever read for a
     * robot's current model.
     */
    async compiled (ref: ModelRef): Promise<CompiledModel> {
      const key = `${ref.name}\u0000${ref.version}`
      let entry = compiled.get(key)
      if (entry !== undefined) {
        compiled.delete(key) // re-inserted last: the map is in least-recently-used order
        compiled.set(key, entry)
        return await entry
      }
      entry = RobotModel.findOne({ where: { name: ref.name, version: ref.version } }).then((found) => {
        if (found === null) throw new Errors.MODEL_NOT_FOUND()
        return compileModel(ref, definitionOf(found))
      })
      compiled.set(key, entry)
      entry.catch(() => { if (compiled.get(key) === entry) compiled.delete(key) })
      if (compiled.size > COMPILED_CACHE) compiled.delete(compiled.keys().next().value as string)
      return await entry
    },

    /** The model of the robot, whole (404 UNITED_NO_MODEL when it has none). */
    async ofRobot (robotId: number): Promise<ModelView> {
      const robot = await Robot.findByPk(robotId, { attributes: ['modelName', 'modelVersion'] })
      if (robot === null || robot.modelName === null || robot.modelVersion === null) throw new Errors.NO_MODEL()
      const found = await RobotModel.findOne({ where: { name: robot.modelName, version: robot.modelVersion } })
      if (found === null) throw new Errors.NO_MODEL()
      return modelView(found)
    },

    /** How many robots use each live version (the admin pages). */
    async usage (): Promise<Map<string, number>> {
      const rows = await Robot.findAll({ attributes: ['modelName', 'modelVersion', [db.sequelize.fn('COUNT', db.sequelize.col('id')), 'n']], where: { modelName: { [Op.ne]: null } }, group: ['modelName', 'modelVersion'], raw: true }) as unknown as Array<{ modelName: string, modelVersion: number, n: number | string }>
      return new Map(rows.map((r) => [`${r.modelName}@${r.modelVersion}`, Number(r.n)]))
    }
  }
}

export type ModelService = ReturnType<typeof createModelService>
