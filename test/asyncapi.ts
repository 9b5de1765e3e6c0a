// What the AsyncAPI tests share: the served document, read by the AsyncAPI
// project's own parser, and a standard JSON Schema validator (a fresh ajv
// with ajv-formats, nothing of ours) for the schemas it holds.
import { Parser, type AsyncAPIDocumentInterface } from '@asyncapi/parser'
import { Ajv, type ValidateFunction } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'

export async function served (app: FastifyInstance, headers: Record<string, string> = {}): Promise<Record<string, unknown>> {
  const res = await app.inject({ method: 'GET', url: '/docs/asyncapi.json', headers })
  if (res.statusCode !== 200) throw new Error(`GET /docs/asyncapi.json: ${res.statusCode} ${res.body}`)
  return res.json()
}

export async function parsed (t: Test, doc: Record<string, unknown>): Promise<AsyncAPIDocumentInterface> {
  const { document, diagnostics } = await new Parser().parse(JSON.stringify(doc))
  // severity 0 is an error, 1 a warning; 2 and 3 are hints (such as "3.1.0 exists")
  const problems = diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`)
  t.same(problems, [], 'the AsyncAPI parser reports no error and no warning')
  if (document === undefined) throw new Error('the AsyncAPI parser could not read the document')
  return document
}

/** A standard validator of a schema the parsed document holds. */
export function standardValidator (schema: unknown): ValidateFunction {
  const ajv = new Ajv({ strict: false, allErrors: true })
  addFormats.default(ajv)
  return ajv.compile(schema as Record<string, unknown>)
}

/** The standard verdict on a payload: valid JSON that the schema accepts. */
export function accepts (validate: ValidateFunction, text: string): boolean {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return false
  }
  return validate(value)
}
