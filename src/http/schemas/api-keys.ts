// REST schemas of the API keys (docs/protocol.md §13.4).
import { Type } from 'typebox'
import { DateTime, NullableDateTime, UUID_PATTERN } from './common.js'

export const ApiKeyName = Type.String({ minLength: 1, maxLength: 100, description: '1 to 100 characters, what the key is for' })

export const NewApiKeyBody = Type.Object({
  name: ApiKeyName,
  expires_at: Type.Optional(Type.Union([DateTime, Type.Null()], { description: 'when the key ends by itself (ISO 8601); null or absent: never. A time in the past is refused (400)' }))
}, { additionalProperties: false })

export const NewApiKeySchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  key: Type.String({ description: '`uk_` and 43 more characters: shown only in this answer, stored hashed. Use it as `Authorization: Bearer <key>`, or as the MQTT password with the username' }),
  created_at: DateTime,
  expires_at: NullableDateTime
})

export const ApiKeyItem = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  created_at: DateTime,
  expires_at: NullableDateTime,
  last_used_at: Type.Union([DateTime, Type.Null()], { description: 'updated at most once a minute' })
})

export const ApiKeyList = Type.Object({ items: Type.Array(ApiKeyItem) })

export const ApiKeyIdParams = Type.Object({ id: Type.String({ pattern: UUID_PATTERN, description: 'the key id' }) })
