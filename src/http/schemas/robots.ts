import { Type } from 'typebox'
import { COMMAND_STATUSES, MAX_COMMAND_TTL, ROBOT_COMMANDS } from '../../contract/payloads.js'
import { MODEL_NAME_PATTERN } from '../../contract/models.js'
import { DateTime, NullableDateTime, RobotUuid } from './common.js'

/** docs/protocol.md §14: a robot's model, by name and version. */
export const ModelRefSchema = Type.Object({
  name: Type.String({ pattern: MODEL_NAME_PATTERN, maxLength: 64 }),
  version: Type.Integer({ minimum: 1 })
}, { additionalProperties: false })
const NullableModelRef = Type.Union([ModelRefSchema, Type.Null()], { description: 'the robot\'s model (name and version), or null when it has none' })

export const SERIAL = Type.String({ minLength: 1, maxLength: 128, pattern: '^[^\\u0000-\\u001f]+$' })
export const ROBOT_NAME = Type.String({ maxLength: 200, pattern: '^[^\\u0000-\\u001f]*$' })
export const ROBOT_SECRET = Type.String({ minLength: 8, maxLength: 256, description: 'the robot secret ("token" in the original backend)' })

/** docs/protocol.md §6.1: what a user sees of a robot. */
export const RobotSchema = Type.Object({
  uuid: Type.String(),
  serial: Type.String(),
  name: Type.String(),
  state: Type.String(),
  data_connected: Type.Boolean(),
  command_connected: Type.Boolean(),
  last_seen_at: NullableDateTime,
  model: NullableModelRef,
  role: Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('manager'), Type.Literal('staff')], {
    description: 'your effective role on the robot: the highest of your direct grant and your group grants, expired ones left out; `staff` for staff'
  })
})

/** docs/protocol.md §8: what staff see of a robot in the management API. */
export const AdminRobotSchema = Type.Object({
  uuid: Type.String(),
  serial: Type.String(),
  name: Type.String(),
  enabled: Type.Boolean(),
  state: Type.String(),
  data_connected: Type.Boolean(),
  command_connected: Type.Boolean(),
  last_seen_at: NullableDateTime,
  created_at: DateTime,
  model: NullableModelRef
})

export const NewRobotSchema = Type.Object({
  uuid: Type.String(),
  serial: Type.String(),
  name: Type.String(),
  enabled: Type.Boolean(),
  model: NullableModelRef,
  token: Type.String({ description: 'the robot secret: shown only here and by rotate_token' })
})

export const NewRobotBody = Type.Object({
  serial: SERIAL,
  name: Type.Optional(ROBOT_NAME),
  token: Type.Optional(ROBOT_SECRET),
  model: Type.Optional(NullableModelRef)
}, { additionalProperties: false })

export const RobotPatchBody = Type.Object({
  serial: Type.Optional(SERIAL),
  name: Type.Optional(ROBOT_NAME),
  enabled: Type.Optional(Type.Boolean()),
  model: Type.Optional(NullableModelRef)
}, { additionalProperties: false, minProperties: 1 })

export const RobotListQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  q: Type.Optional(Type.String({ maxLength: 128, description: 'searches serial and name' })),
  enabled: Type.Optional(Type.Boolean()),
  online: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

export const RobotObtainTokenBody = Type.Object({
  serial: Type.String({ minLength: 1, maxLength: 128 }),
  token: Type.String({ minLength: 1, maxLength: 256 })
}, { additionalProperties: false })

export const RobotAccessTokenSchema = Type.Object({
  access_token: Type.String({ description: '32 random bytes, hex: the MQTT password' }),
  expires_in: Type.Integer({ description: 'seconds' }),
  robot_uuid: Type.String({ description: 'the MQTT username' })
})

export const RotateTokenSchema = Type.Object({ token: Type.String() })

/**
 * docs/protocol.md §2.4: how long the previous secret keeps working at obtain_token.
 * The body is optional: a request without one rotates with 0 (docs/protocol.md §2.4).
 */
export const RotateTokenBody = Type.Object({
  grace_seconds: Type.Optional(Type.Integer({
    minimum: 0,
    maximum: 604800,
    description: 'seconds during which the previous secret still works at obtain_token (its connections and tokens are left alone); 0, the default, voids it at once with its tokens and connections'
  }))
}, { additionalProperties: false })

export const CommandBody = Type.Object({
  robot_uuid: RobotUuid,
  // Any name: the service answers UNITED_UNKNOWN_COMMAND for one that is neither a mode nor the model's.
  command: Type.String({ minLength: 1, maxLength: 64, description: `a mode (${ROBOT_COMMANDS.join(', ')}) or a command of the robot's model (docs/protocol.md §14.3)` }),
  // Permissive on purpose: the model's schema checks it, and nothing in it may be coerced or dropped before.
  params: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'a model command\'s parameters, checked against its schema (at most 8 KiB of JSON); none for a mode' })),
  ttl: Type.Optional(Type.Integer({
    minimum: 1,
    maximum: MAX_COMMAND_TTL,
    description: 'seconds the command may wait for a robot that is not command-connected: it is then queued (201, status queued) instead of refused with 409, published when the robot subscribes to its commands, and expired if it is still queued after ttl'
  }))
}, { additionalProperties: false })

const COMMAND_EXPIRES_AT = 'when the command expires unless it is acknowledged (or cancelled) first: for a queued one, ttl after created_at; for a sent one (pending, delivered), COMMAND_TIMEOUT after it was published (at created_at, or when its queue was released), or a model command\'s own timeout instead; null once it is done, failed, expired or cancelled'

const COMMAND_PARAMS = Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], { description: 'a model command\'s params ({} when it was sent without); null for a mode' })
const COMMAND_RESULT = Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], { description: 'the result the robot acknowledged a model command with; null when none (a mode, no ack yet, an ack without one, or a refused one)' })

export const CommandCreatedSchema = Type.Object({
  id: Type.String(),
  robot_uuid: Type.String(),
  command: Type.String(),
  status: Type.String({ description: 'pending (published), or queued (waiting for the robot, with a ttl)' }),
  created_at: DateTime,
  expires_at: Type.Union([DateTime, Type.Null()], { description: COMMAND_EXPIRES_AT }),
  params: COMMAND_PARAMS,
  result: COMMAND_RESULT
})

export const CommandSchema = Type.Object({
  id: Type.String(),
  robot_uuid: Type.String(),
  command: Type.String(),
  status: Type.Enum(COMMAND_STATUSES),
  issued_by: Type.String(),
  created_at: DateTime,
  delivered_at: NullableDateTime,
  acked_at: NullableDateTime,
  expires_at: Type.Union([DateTime, Type.Null()], { description: COMMAND_EXPIRES_AT }),
  params: COMMAND_PARAMS,
  result: COMMAND_RESULT
})

export const CommandParams = Type.Object({ uuid: RobotUuid, id: Type.String({ minLength: 1, maxLength: 64 }) })

export const FrameSchema = Type.Object({
  frame_id: Type.String(),
  type: Type.Integer(),
  data: Type.Record(Type.String(), Type.Unknown()),
  recorded_at: NullableDateTime,
  received_at: DateTime
})

export const FrameQuery = Type.Object({
  type: Type.Optional(Type.Integer({ minimum: 1, maximum: 4, description: '1 position, 2 geo, 3 hardware, 4 telemetry (docs/protocol.md §14)' })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'ISO 8601, bounds received_at (inclusive)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'ISO 8601, bounds received_at (inclusive)' })),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 }))
}, { additionalProperties: false })

export const AggregateQuery = Type.Object({
  type: Type.Integer({ minimum: 1, maximum: 4, description: "1 position, 2 geo, 3 hardware, 4 telemetry: the number and integer fields of the robot's current model (404 UNITED_NO_MODEL when it has none)" }),
  from: Type.String({ format: 'date-time', description: 'ISO 8601, bounds received_at (inclusive)' }),
  to: Type.String({ format: 'date-time', description: 'ISO 8601, bounds received_at (inclusive)' }),
  bucket: Type.Integer({ minimum: 1, maximum: 86400, description: 'seconds; buckets start at multiples of it since the Unix epoch' })
}, { additionalProperties: false })

const FieldStats = Type.Record(Type.String(), Type.Number(), { description: "each numeric field of the type that a frame of the bucket has; for type 4, named by the robot's current model (its number and integer fields)" })

export const AggregateSchema = Type.Object({
  type: Type.Integer(),
  bucket: Type.Integer(),
  from: DateTime,
  to: DateTime,
  items: Type.Array(Type.Object({
    start: DateTime,
    count: Type.Integer(),
    min: FieldStats,
    max: FieldStats,
    avg: FieldStats
  }))
})

export const ExportQuery = Type.Object({
  type: Type.Optional(Type.Integer({ minimum: 1, maximum: 4, description: "one frame type; required with format=csv (type 4: a column per telemetry field of the robot's current model, 404 UNITED_NO_MODEL when it has none)" })),
  from: Type.Optional(Type.String({ format: 'date-time', description: 'ISO 8601, bounds received_at (inclusive)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'ISO 8601, bounds received_at (inclusive)' })),
  format: Type.Optional(Type.Union([Type.Literal('ndjson'), Type.Literal('csv')], { default: 'ndjson' }))
}, { additionalProperties: false })

export const AccessParams = Type.Object({ uuid: RobotUuid, user_id: Type.Integer({ minimum: 1 }) })

/** docs/protocol.md §13: a role on a grant. */
export const RoleSchema = Type.Union([Type.Literal('viewer'), Type.Literal('operator'), Type.Literal('manager')], { description: 'viewer < operator < manager' })

/** The body of a grant (robot, group or manager's): the role (default operator) and its end. */
export const GrantBody = Type.Object({
  role: Type.Optional(RoleSchema),
  expires_at: Type.Optional(Type.Union([Type.String({ format: 'date-time' }), Type.Null()], { description: 'when the grant ends by itself (ISO 8601); null or absent: never. A time in the past is refused (400)' }))
}, { additionalProperties: false })

export const GrantItem = Type.Object({
  user_id: Type.Integer(),
  username: Type.String(),
  role: RoleSchema,
  expires_at: NullableDateTime
})

export const ManagedGrantItem = Type.Object({ username: Type.String(), role: RoleSchema, expires_at: NullableDateTime })
export const ManagedGrantParams = Type.Object({ uuid: RobotUuid, username: Type.String({ minLength: 1, maxLength: 150 }) })

export const GroupSchema = Type.Object({ id: Type.Integer(), name: Type.String(), created_at: DateTime })
export const GroupDetailSchema = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  created_at: DateTime,
  robots: Type.Array(Type.String(), { description: 'the uuids of its robots' }),
  users: Type.Array(GrantItem, { description: 'its unexpired grants' })
})
export const NewGroupBody = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) }, { additionalProperties: false })
export const GroupParams = Type.Object({ id: Type.Integer({ minimum: 1 }) })
export const GroupRobotParams = Type.Object({ id: Type.Integer({ minimum: 1 }), uuid: RobotUuid })
export const GroupUserParams = Type.Object({ id: Type.Integer({ minimum: 1 }), user_id: Type.Integer({ minimum: 1 }) })

/** A grant body as the services take it: an absent body is an operator grant for good. */
export function grantInput (body: { role?: 'viewer' | 'operator' | 'manager', expires_at?: string | null } | undefined | null): { role?: 'viewer' | 'operator' | 'manager', expiresAt: Date | null } {
  const expires = body?.expires_at
  return { role: body?.role, expiresAt: expires === undefined || expires === null ? null : new Date(expires) }
}
