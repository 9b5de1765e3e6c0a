// Shared pieces of the REST schemas: errors (docs/protocol.md §7), pages (§6), ids.
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

/**
 * 429 of the history reads (aggregate, export): too many at once for the
 * user or the node. `Retry-After` says how many seconds to wait.
 */
export const BusyResponse = Type.Object({
  statusCode: Type.Integer(),
  error: Type.String({ description: 'HTTP reason phrase' }),
  message: Type.String(),
  code: Type.Optional(Type.String({ description: '`UNITED_BUSY`' }))
}, {
  description: 'Too many history reads at once (`UNITED_BUSY`): HISTORY_CONCURRENCY per user or HISTORY_NODE_CONCURRENCY per node',
  headers: { 'Retry-After': Type.Integer({ minimum: 1, description: 'seconds to wait before trying again' }) }
})

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
