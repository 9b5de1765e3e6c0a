// Fixtures through the services, never through models.
import type { FastifyInstance } from 'fastify'
import type { ModelRef } from '../src/contract/models.js'
import type { Role } from '../src/contract/roles.js'
import type { QueuedFrame } from '../src/services/frame-writer.js'

let seq = 0
const next = (): number => ++seq

export interface TestUser { id: number, username: string, password: string, jwt: string, isStaff: boolean }
export interface TestRobot { uuid: string, serial: string, secret: string }

export async function createUser (app: FastifyInstance, opts: { username?: string, password?: string, isStaff?: boolean } = {}): Promise<TestUser> {
  const username = opts.username ?? `user${next()}_${process.pid}`
  const password = opts.password ?? 'correct-horse-battery'
  const user = await app.services.users.create({ username, password, isStaff: opts.isStaff ?? false }, { actor: null })
  return { id: user.id, username, password, jwt: await app.services.auth.issueAccess(user), isStaff: user.is_staff }
}

export async function createStaff (app: FastifyInstance, opts: { username?: string } = {}): Promise<TestUser> {
  return await createUser(app, { ...opts, isStaff: true })
}

export async function createRobot (app: FastifyInstance, opts: { serial?: string, name?: string, secret?: string, model?: ModelRef } = {}): Promise<TestRobot> {
  const serial = opts.serial ?? `SN-${next()}-${process.pid}`
  const robot = await app.services.robots.create({ serial, name: opts.name, token: opts.secret, model: opts.model }, { actor: null })
  return { uuid: robot.uuid, serial, secret: robot.token }
}

export async function grant (app: FastifyInstance, user: { id: number }, robot: { uuid: string }): Promise<void> {
  await app.services.access.grant(user.id, robot.uuid, { actor: null })
}

/** A direct grant with a role (and an end; null: for good), through the service. */
export async function grantRole (app: FastifyInstance, user: { id: number }, robot: { uuid: string }, role: Role, expiresAt: Date | null = null): Promise<void> {
  await app.services.access.grant(user.id, robot.uuid, { role, expiresAt }, { actor: null })
}

/** A robot granted to a fresh user, for tests about one owner. */
export async function ownedRobot (app: FastifyInstance): Promise<{ user: TestUser, robot: TestRobot }> {
  const user = await createUser(app)
  const robot = await createRobot(app)
  await grant(app, user, robot)
  return { user, robot }
}

/** A robot's row id (what the frame writer takes), looked up as staff. */
export async function robotIdOf (app: FastifyInstance, uuid: string): Promise<number> {
  return (await app.services.access.robotFor({ id: 0, username: 'staff', isStaff: true }, uuid)).id
}

/** A position frame as the broker queues it for the frame writer. */
export function queuedFrame (robotId: number, frameId: string): QueuedFrame {
  return { robotId, frameId, type: 1, data: { speed: 1 }, recordedAt: null, receivedAt: new Date() }
}

/**
 * A floor cleaner's model (docs/protocol.md §14): every kind of telemetry
 * field and commands with and without parameters and timeouts.
 */
export const CLEANER_MODEL = {
  name: 'cleaner',
  description: 'a floor-cleaning robot',
  telemetry: {
    brush_rpm: { type: 'integer', minimum: 0, maximum: 3000, unit: 'rpm' },
    water_level: { type: 'number', minimum: 0, maximum: 100, unit: '%', description: 'clean water tank' },
    mopping: { type: 'boolean' },
    zone: { type: 'string', max_length: 32 },
    mode: { type: 'string', enum: ['eco', 'normal', 'deep'] }
  },
  commands: {
    dock: { description: 'go to the docking station' },
    clean_zone: {
      description: 'clean one zone',
      params: {
        type: 'object',
        properties: {
          zone: { type: 'string', minLength: 1, maxLength: 32 },
          passes: { type: 'integer', minimum: 1, maximum: 5 },
          mode: { type: 'string', enum: ['eco', 'normal', 'deep'] }
        },
        required: ['zone'],
        additionalProperties: false
      },
      timeout: 600
    }
  }
}

/** Creates a model version through the service (the next version of its name). */
export async function createModel (app: FastifyInstance, body: { name: string } & Record<string, unknown> = CLEANER_MODEL): Promise<ModelRef> {
  const created = await app.services.models.create(body, { actor: null })
  return { name: created.name, version: created.version }
}

/** Gives a robot a model (or none) through the service. */
export async function setModel (app: FastifyInstance, robot: { uuid: string }, model: ModelRef | null): Promise<void> {
  await app.services.robots.update(robot.uuid, { model }, { actor: null })
}
