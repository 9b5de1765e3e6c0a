// The one table of United's error codes (docs/protocol.md §7). Services throw these;
// the HTTP layer serializes them as {statusCode, error, message, code}; the
// broker maps the authentication ones to CONNACK return codes.
import createError, { type FastifyErrorConstructor } from '@fastify/error'

function define (code: string, status: number, message: string): FastifyErrorConstructor {
  return createError(code, message, status)
}

export const Errors = {
  INVALID_CREDENTIALS: define('UNITED_INVALID_CREDENTIALS', 401, 'invalid username or password'),
  UNAUTHORIZED: define('UNITED_UNAUTHORIZED', 401, 'authentication required'),
  TOKEN_INVALID: define('UNITED_TOKEN_INVALID', 401, 'invalid or expired token'),
  ROBOT_AUTH_FAILED: define('UNITED_ROBOT_AUTH_FAILED', 401, 'invalid serial or token'),
  USER_INACTIVE: define('UNITED_USER_INACTIVE', 401, 'user is not active'),
  STAFF_ONLY: define('UNITED_STAFF_ONLY', 403, 'staff only'),
  // docs/protocol.md §13.1: thrown with the role needed, e.g. "this needs the operator role on the robot".
  ROLE_REQUIRED: define('UNITED_ROLE_REQUIRED', 403, 'this needs the %s role on the robot'),
  // docs/protocol.md §13.4: an API key may do what its user may, except make more keys.
  API_KEY_FORBIDDEN: define('UNITED_API_KEY_FORBIDDEN', 403, '%s'),
  GROUP_NOT_FOUND: define('UNITED_GROUP_NOT_FOUND', 404, 'group not found'),
  GROUP_NAME_TAKEN: define('UNITED_GROUP_NAME_TAKEN', 409, 'a group with this name already exists'),
  API_KEY_NOT_FOUND: define('UNITED_API_KEY_NOT_FOUND', 404, 'API key not found'),
  TOO_MANY_API_KEYS: define('UNITED_TOO_MANY_API_KEYS', 409, 'at most %s live API keys per user; delete one first'),
  // docs/protocol.md §14
  MODEL_NOT_FOUND: define('UNITED_MODEL_NOT_FOUND', 404, 'model version not found'),
  MODEL_IN_USE: define('UNITED_MODEL_IN_USE', 409, 'a robot uses this model version; give the robot another model first'),
  NO_MODEL: define('UNITED_NO_MODEL', 404, 'this robot has no model'),
  UNKNOWN_COMMAND: define('UNITED_UNKNOWN_COMMAND', 400, '%s'),
  INVALID_PARAMS: define('UNITED_INVALID_PARAMS', 400, '%s'),
  ROBOT_NOT_FOUND: define('UNITED_ROBOT_NOT_FOUND', 404, 'robot not found'),
  USER_NOT_FOUND: define('UNITED_USER_NOT_FOUND', 404, 'user not found'),
  SERIAL_TAKEN: define('UNITED_SERIAL_TAKEN', 409, 'a robot with this serial already exists'),
  USERNAME_TAKEN: define('UNITED_USERNAME_TAKEN', 409, 'a user with this username already exists'),
  // docs/protocol.md §5 names this code and message exactly.
  ROBOT_NOT_CONNECTED: define('ROBOT_NOT_CONNECTED', 409, 'robot is not connected'),
  // docs/protocol.md §5.4 names this code.
  COMMAND_FINISHED: define('UNITED_COMMAND_FINISHED', 409, 'the command was already delivered, finished or cancelled'),
  COMMAND_NOT_FOUND: define('UNITED_COMMAND_NOT_FOUND', 404, 'command not found'),
  BAD_CURSOR: define('UNITED_BAD_CURSOR', 400, 'malformed cursor'),
  BAD_REQUEST: define('UNITED_BAD_REQUEST', 400, '%s'),
  DATABASE_UNAVAILABLE: define('UNITED_DATABASE_UNAVAILABLE', 503, 'database unavailable'),
  // docs/protocol.md §9; thrown with `retryAfter` (seconds), sent as Retry-After.
  TOO_MANY_ATTEMPTS: define('UNITED_TOO_MANY_ATTEMPTS', 429, 'too many failed log-ins from this address; try again later'),
  // A credential that was valid and has been revoked: counted toward no log-in limit.
  CREDENTIAL_REVOKED: define('UNITED_CREDENTIAL_REVOKED', 401, 'this credential was revoked'),
  // docs/protocol.md §10: a robot's queue holds COMMAND_QUEUE_LIMIT commands at most.
  QUEUE_FULL: define('UNITED_QUEUE_FULL', 429, "the robot's command queue is full; wait for it to drain or cancel queued commands"),
  // docs/protocol.md §10: HISTORY_CONCURRENCY / HISTORY_NODE_CONCURRENCY; thrown with `retryAfter`.
  HISTORY_BUSY: define('UNITED_BUSY', 429, 'too many history reads at once; try again shortly'),
  // docs/protocol.md §10: an aggregate that would read more than AGGREGATE_MAX_ROWS raw frames.
  RANGE_TOO_LARGE: define('UNITED_RANGE_TOO_LARGE', 400, '%s'),
  BUSY: define('UNITED_BUSY', 503, 'too many log-ins are being checked right now; try again shortly')
} as const

export type UnitedErrorName = keyof typeof Errors

/** True when `err` is one of ours with the given name. */
export function isError (err: unknown, name: UnitedErrorName): boolean {
  return err instanceof Errors[name]
}

/** An error that tells the client when to try again (Retry-After, in seconds). */
export function withRetryAfter<E extends Error> (err: E, seconds: number): E & { retryAfter: number } {
  return Object.assign(err, { retryAfter: seconds })
}
