// The JSON Schemas of the MQTT messages other than data frames (docs/protocol.md §3,
// §5, §6): what the server publishes, and the one other message a robot
// sends, its command acknowledgement, which the broker checks with the very
// schema here. Served in the AsyncAPI document (asyncapi.ts). Pure: no I/O.
import { Ajv } from 'ajv'
import { Type, type TSchema } from 'typebox'
import { MAX_RESULT_BYTES } from './models.js'
import { ROBOT_COMMANDS } from './payloads.js'

const nullable = (schema: TSchema): TSchema => Type.Union([schema, Type.Null()])
const uuid = Type.String({ format: 'uuid', description: 'the robot, lower-case and hyphenated' })
const instant = Type.String({ format: 'date-time' })

/** robots/{uuid}/ack: one per data frame, once it is stored or refused. */
export const FRAME_ACK_SCHEMA = Type.Union([
  Type.Object({
    id: Type.String({ description: 'the frame id' }),
    status: Type.Literal('ok', { description: 'stored (committed to the database), or already stored under this id' })
  }, { additionalProperties: false, title: 'frame stored' }),
  Type.Object({
    id: nullable(Type.String({ description: 'the frame id; null when the payload had none readable (not JSON, too large, a missing or malformed id)' })),
    status: Type.Literal('error'),
    errors: Type.Array(Type.String(), { minItems: 1, maxItems: 21, description: 'human-readable, naming the field; at most 20, then one "and N more errors"' }),
    retry: Type.Optional(Type.Literal(true, { description: 'storage failed, not the frame: resend the same frame' }))
  }, { additionalProperties: false, title: 'frame refused' })
])

/** robots/{uuid}/commands: a command a user issued (docs/protocol.md §5, §14.3). */
export const COMMAND_SCHEMA = Type.Object({
  id: Type.String({ description: 'the command id: echo it in the acknowledgement' }),
  command: Type.String({ minLength: 1, maxLength: 64, description: `a mode, the state to go into (${ROBOT_COMMANDS.join(', ')}), or a command of the robot's model (docs/protocol.md §14.3)` }),
  issued_by: Type.String({ description: 'the username of who issued it' }),
  issued_at: instant,
  params: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'a model command\'s parameters, checked against its schema ({} when it was sent without); absent for a mode' }))
}, { additionalProperties: false })

/**
 * The largest command acknowledgement the broker reads; a larger one is
 * ignored. Twice a result's limit: an ack whose result is somewhat too large
 * still counts (its result is refused, docs/protocol.md §14.3).
 */
export const MAX_COMMAND_ACK_BYTES = 16_384

/** robots/{uuid}/commands/ack: the robot's answer to a command. */
export const COMMAND_ACK_SCHEMA = Type.Object({
  id: Type.String({ description: 'the id of the command it answers' }),
  status: Type.Union([Type.Literal('ok'), Type.Literal('error')], { description: 'ok: done, the robot is now in the commanded state; error: failed' }),
  state: Type.Optional(Type.String({ description: 'the state the robot is in now (informative: on ok the server records the command as its state)' })),
  message: Type.Optional(Type.String({ description: 'why it failed, for people' })),
  result: Type.Optional(Type.Unknown({ description: `a model command's result, stored with it: a JSON object of at most ${MAX_RESULT_BYTES} bytes of JSON. Anything else is not stored, the ack's status still counts, and the command's message says why ("result refused: …")` }))
}, { additionalProperties: true, description: `at most ${MAX_COMMAND_ACK_BYTES} bytes; other fields are ignored` })

const metric = (description: string): TSchema => Type.Optional(Type.Number({ description }))

/** robots/{uuid}/stats: the last known value of each field, after each stored batch (docs/protocol.md §6.2). */
export const STATS_SCHEMA = Type.Object({
  robot_uuid: uuid,
  state: nullable(Type.String({ description: 'the robot\'s state (its last command done)' })),
  speed: nullable(Type.Number()),
  position_x: nullable(Type.Number()),
  position_y: nullable(Type.Number()),
  angle_theta: nullable(Type.Number()),
  datetime: nullable(Type.String({ description: 'the datetime of the latest frame, as the robot sent it' })),
  data_connected: Type.Boolean(),
  command_connected: Type.Boolean(),
  latitude: metric('from the latest geo frame'),
  longitude: metric('from the latest geo frame'),
  altitude: metric('from the latest geo frame'),
  accuracy: metric('from the latest geo frame'),
  battery: metric('from the latest hardware frame'),
  temperature: metric('from the latest hardware frame'),
  cpu: metric('from the latest hardware frame'),
  memory: metric('from the latest hardware frame')
}, { additionalProperties: false })

/** robots/{uuid}/presence: retained, republished on every change (docs/protocol.md §3.3). */
export const PRESENCE_SCHEMA = Type.Object({
  robot_uuid: uuid,
  online: Type.Boolean({ description: 'the same as data_connected' }),
  data_connected: Type.Boolean({ description: 'has an open connection' }),
  command_connected: Type.Boolean({ description: 'a connection of it is subscribed to its commands topic' }),
  since: Type.String({ format: 'date-time', description: 'when online last changed' })
}, { additionalProperties: false })

export interface CommandAck { id: string, status: 'ok' | 'error', state?: string, message?: string, result?: unknown }
const validateCommandAck = new Ajv({ strict: false }).compile<CommandAck>(COMMAND_ACK_SCHEMA)

/** A robot's command acknowledgement, or null when it is not one (COMMAND_ACK_SCHEMA decides). */
export function parseCommandAck (payload: Buffer): CommandAck | null {
  if (payload.length > MAX_COMMAND_ACK_BYTES) return null
  let value: unknown
  try {
    value = JSON.parse(payload.toString('utf8'))
  } catch {
    return null
  }
  return validateCommandAck(value) ? value : null
}
