// Robot models (docs/protocol.md §14) as the Management API takes and returns them.
import { Type } from 'typebox'
import { FIELD_NAME_PATTERN, FIELD_TYPES, MAX_STRING_LENGTH, MAX_TIMEOUT_SECONDS, MODEL_NAME_PATTERN, SCHEMA_KEYWORDS } from '../../contract/models.js'
import { DateTime } from './common.js'

const FieldDeclaration = Type.Object({
  type: Type.Union(FIELD_TYPES.map((t) => Type.Literal(t))),
  minimum: Type.Optional(Type.Number({ description: 'number and integer fields' })),
  maximum: Type.Optional(Type.Number({ description: 'number and integer fields' })),
  enum: Type.Optional(Type.Array(Type.String(), { description: 'string fields: the allowed values' })),
  max_length: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_STRING_LENGTH, description: `string fields: the longest value (default ${MAX_STRING_LENGTH})` })),
  unit: Type.Optional(Type.String({ maxLength: 32 })),
  description: Type.Optional(Type.String({ maxLength: 1000 }))
}, { additionalProperties: false, description: 'one telemetry field' })

const CommandDeclaration = Type.Object({
  description: Type.Optional(Type.String({ maxLength: 1000 })),
  params: Type.Optional(Type.Record(Type.String(), Type.Unknown(), {
    description: `a JSON Schema of an object ("type": "object"), using only ${SCHEMA_KEYWORDS.join(', ')}`
  })),
  timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TIMEOUT_SECONDS, description: 'seconds; replaces COMMAND_TIMEOUT for this command' }))
}, { additionalProperties: false, description: 'one command' })

export const ModelBody = Type.Object({
  name: Type.String({ pattern: MODEL_NAME_PATTERN }),
  description: Type.Optional(Type.String({ maxLength: 1000 })),
  telemetry: Type.Record(Type.String({ pattern: FIELD_NAME_PATTERN }), FieldDeclaration, { description: 'up to 64 fields; not datetime, robot_uuid, state, data_connected nor command_connected' }),
  commands: Type.Record(Type.String({ pattern: FIELD_NAME_PATTERN }), CommandDeclaration, { description: 'up to 64 commands; not auto, idle, error nor manual' })
}, { description: 'at most 64 KiB of JSON' })

export const ModelSchema = Type.Object({
  name: Type.String(),
  version: Type.Integer(),
  description: Type.Union([Type.String(), Type.Null()]),
  telemetry: Type.Record(Type.String(), Type.Unknown()),
  commands: Type.Record(Type.String(), Type.Unknown()),
  created_at: DateTime
})
export const ModelListItem = Type.Object({
  ...ModelSchema.properties,
  versions: Type.Array(Type.Integer(), { description: 'the numbers of the live versions, oldest first; the item is the latest' })
})
export const ModelVersionParams = Type.Object({ name: Type.String({ pattern: MODEL_NAME_PATTERN }), version: Type.Integer({ minimum: 1 }) })
