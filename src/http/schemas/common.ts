// Shared pieces of the REST schemas: errors (CONTRACT §7), pages (§6), ids.
import { Type, type TSchema } from 'typebox'

export const ErrorSchema = Type.Object({
  statusCode: Type.Integer(),
  error: Type.String({ description: 'HTTP reason phrase' }),
  message: Type.String(),
  code: Type.Optional(Type.String({ description: 'UNITED_… or a contract code such as ROBOT_NOT_CONNECTED' }))
}, { $id: 'Error', description: 'Every REST error' })

/** `{400: Error, 401: Error, …}` for a route's response map. */
export function errorResponses<const C extends number[]> (...codes: C): { [K in C[number]]: typeof ErrorSchema } {
  return Object.fromEntries(codes.map((c) => [c, ErrorSchema])) as { [K in C[number]]: typeof ErrorSchema }
}

export const NoContent = Type.Null({ description: 'no content' })

export const UUID_PATTERN = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
export const RobotUuid = Type.String({ pattern: UUID_PATTERN, description: 'robot uuid (lower-case, hyphenated)' })
export const RobotUuidParams = Type.Object({ uuid: RobotUuid })

export const PageQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 50 })),
  cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 }))
}, { additionalProperties: false })

export function PageSchema<T extends TSchema> (item: T) {
  return Type.Object({
    items: Type.Array(item),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'pass as `cursor` for the next page; null on the last page' })
  })
}

export const DateTime = Type.String({ format: 'date-time' })
export const NullableDateTime = Type.Union([DateTime, Type.Null()])

export const BearerSecurity = [{ bearerAuth: [] }]
