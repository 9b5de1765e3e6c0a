// Forms: text fields in, field-by-field errors out. The rules are the
// Management API's own TypeBox schemas (src/http/schemas), checked with ajv,
// so a serial or a password is valid in a form exactly when it is valid in
// the API: there is no second copy of any rule.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import type { TSchema } from 'typebox'

export type FieldErrors = Record<string, string>

const ajv = new Ajv({ allErrors: true, coerceTypes: false, strict: false, verbose: true })
const compiled = new WeakMap<object, ValidateFunction>()

/** One string field of a parsed form body; repeated or non-text fields count as missing. */
export function text (body: unknown, name: string): string | undefined {
  if (body === null || typeof body !== 'object') return undefined
  const value = (body as Record<string, unknown>)[name]
  return typeof value === 'string' ? value : undefined
}

/** A checkbox: checked when present with any value. */
export function checked (body: unknown, name: string): boolean {
  return text(body, name) !== undefined
}

function message (e: ErrorObject): string {
  const p = e.params as Record<string, unknown>
  const schema = e.parentSchema as { description?: string } | undefined
  switch (e.keyword) {
    case 'required': return 'This field is required.'
    case 'minLength': return p.limit === 1 ? 'This field is required.' : `At least ${String(p.limit)} characters.`
    case 'maxLength': return `At most ${String(p.limit)} characters.`
    case 'pattern': return schema?.description !== undefined ? `Only ${schema.description}.` : 'Contains characters that are not allowed (such as line breaks).'
    case 'enum': case 'anyOf': return 'Choose one of the listed values.'
    case 'minProperties': return 'Nothing to change.'
    default: return e.message ?? 'Invalid value.'
  }
}

/** The errors of `value` against `schema`, one per field (`_form` for the whole form); {} when valid. */
export function fieldErrors (schema: TSchema, value: Record<string, unknown>): FieldErrors {
  let validate = compiled.get(schema)
  if (validate === undefined) {
    validate = ajv.compile(schema)
    compiled.set(schema, validate)
  }
  if (validate(value)) return {}
  const errors: FieldErrors = {}
  for (const e of validate.errors ?? []) {
    const missing = (e.params as { missingProperty?: string }).missingProperty
    const field = e.instancePath.replace(/^\//, '').split('/')[0] || missing || '_form'
    errors[field] ??= message(e)
  }
  return errors
}

/** True when there is at least one error. */
export function failed (errors: FieldErrors): boolean {
  return Object.keys(errors).length > 0
}
