// A credential that could not be checked is not a wrong credential. When the
// database (or, in cluster mode, the Redis that holds robot tokens) cannot
// answer — connection refused, pool acquire timeout, statement timeout, a
// terminated session, SQLite busy — a log-in gets 503
// UNITED_DATABASE_UNAVAILABLE (CONNACK 3 on MQTT) and counts toward no
// log-in limit: a database under stress must not turn every valid JWT into
// a 401, nor block the addresses of a whole fleet reconnecting through it.
//
// Only the look-ups of a credential check run inside `checking()`, never the
// hash comparison or the decision: whatever such a look-up throws that is not
// one of United's own errors means "no answer", whatever driver raised it
// (Sequelize's classes, node-postgres' SQLSTATEs, SQLite's codes, ioredis).
// A wrong credential is never an exception, so nothing a client sends can
// reach this path.
import { Errors, withRetryAfter } from '../errors.js'

/** Seconds a client is told to wait (Retry-After) before it tries again. */
export const UNAVAILABLE_RETRY_AFTER = 5

/** What a log line may say about a failure: its kind, never its SQL, parameters or connection string. */
export interface FailureSummary { name: string, code?: string }

/** The error's class and driver code, for the warning that a log-in could not be checked. */
export function summarize (err: unknown): FailureSummary {
  if (!(err instanceof Error)) return { name: typeof err }
  const parent = (err as { parent?: { code?: unknown } }).parent
  const code = (err as { code?: unknown }).code ?? parent?.code
  return typeof code === 'string' ? { name: err.name, code: code.slice(0, 32) } : { name: err.name }
}

/** True for United's own errors (a decision), false for anything a driver threw. */
function isOurs (err: unknown): boolean {
  return Object.values(Errors).some((E) => err instanceof E)
}

/** DATABASE_UNAVAILABLE with a Retry-After, carrying the cause's summary (`reason`) for the log. */
export function unavailable (cause: unknown): Error & { retryAfter: number, reason: FailureSummary } {
  return Object.assign(withRetryAfter(new Errors.DATABASE_UNAVAILABLE(), UNAVAILABLE_RETRY_AFTER), { reason: summarize(cause) })
}

/** Runs the look-up of a credential check; a failure of the store becomes DATABASE_UNAVAILABLE. */
export async function checking<T> (lookup: () => Promise<T>): Promise<T> {
  try {
    return await lookup()
  } catch (err) {
    if (isOurs(err)) throw err
    throw unavailable(err)
  }
}

/** The cause's summary of a DATABASE_UNAVAILABLE thrown by `unavailable()`, for a warning. */
export function reasonOf (err: unknown): FailureSummary | undefined {
  const reason = (err as { reason?: unknown } | null)?.reason
  return typeof reason === 'object' && reason !== null ? reason as FailureSummary : undefined
}
