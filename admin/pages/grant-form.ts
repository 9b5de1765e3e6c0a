// The role and expiry fields of the grant forms (robot, user and group
// pages; docs/protocol.md §13): a role select (operator by default) and an
// optional datetime-local expiry, read as UTC. The rule that an expiry must
// lie ahead is the services' own (checkExpiry, 400 BAD_REQUEST): the pages
// catch it and show it next to the field.
import { isRole, ROLES, type Role } from '../../src/contract/roles.js'
import type { GrantInput } from '../../src/services/access.js'
import { isError } from '../../src/errors.js'
import { text, type FieldErrors } from '../forms.js'

/** What the grant fields hold on the page: the role, the expiry as typed, their errors. */
export interface GrantFields { role: string, expires: string, errors: FieldErrors }

export const EMPTY_GRANT: GrantFields = { role: 'operator', expires: '', errors: {} }

/** The select's options, lowest role first. */
export const ROLE_OPTIONS: ReadonlyArray<{ value: Role, label: string }> = ROLES.map((value) => ({
  value,
  label: value === 'viewer' ? 'viewer — sees it' : value === 'operator' ? 'operator — also sends commands' : 'manager — also grants it to other users'
}))

export const PAST_EXPIRY = 'This time is in the past: choose a later one (UTC), or leave it empty for no end.'

// What a datetime-local input sends (seconds optional), or the same typed by
// hand with a space where a browser without the input puts none.
const LOCAL_TIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?$/

/** A datetime-local value as a UTC time; null when empty; undefined when it is no valid date and time. */
export function utcOf (value: string): Date | null | undefined {
  if (value === '') return null
  const m = LOCAL_TIME.exec(value)
  if (m === null) return undefined
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map((x) => Number(x ?? 0)) as [number, number, number, number, number, number]
  const ms = Number((m[7] ?? '0').padEnd(3, '0'))
  const at = new Date(Date.UTC(y, mo - 1, d, h, mi, s, ms))
  // Date.UTC rolls 30 February over into March: refuse what does not come back as typed.
  if (at.getUTCFullYear() !== y || at.getUTCMonth() !== mo - 1 || at.getUTCDate() !== d || at.getUTCHours() !== h || at.getUTCMinutes() !== mi || at.getUTCSeconds() !== s) return undefined
  return at
}

/** The role and expiry of a submitted grant form: the service's input, or the fields with their errors. */
export function grantFields (body: unknown): { fields: GrantFields, input?: GrantInput } {
  const rawRole = text(body, 'role') ?? ''
  const role = rawRole === '' ? 'operator' : rawRole
  const expires = (text(body, 'expires_at') ?? '').trim().slice(0, 40)
  const errors: FieldErrors = {}
  if (!isRole(role)) errors.role = 'Choose one of the listed roles.'
  const expiresAt = utcOf(expires)
  if (expiresAt === undefined) errors.expires_at = 'A date and time such as 2030-12-31T18:00 (UTC), or nothing for no end.'
  const fields = { role: isRole(role) ? role : 'operator', expires, errors }
  if (!isRole(role) || expiresAt === undefined) return { fields }
  return { fields, input: { role, expiresAt } }
}

/** Runs a grant; an expiry the service refuses as past becomes the field's error (nothing was stored). */
export async function tryGrant (fields: GrantFields, work: () => Promise<void>): Promise<GrantFields | null> {
  try {
    await work()
    return null
  } catch (err) {
    if (!isError(err, 'BAD_REQUEST')) throw err
    return { ...fields, errors: { expires_at: PAST_EXPIRY } }
  }
}

/** "until 2030-12-31 18:00:00 UTC" or "no end", for a grant's expiry. */
export function until (expiresAt: string | null): string {
  return expiresAt === null ? 'no end' : `until ${expiresAt.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')}`
}
