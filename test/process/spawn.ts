// Runs the compiled server and CLI as real processes (npm test builds first).
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { pgBase, testConfig, testDatabase } from '../helper.js'

export const ROOT = resolve(import.meta.dirname, '..', '..')
export const SERVER = join(ROOT, 'dist', 'src', 'server.js')
export const MANAGE = join(ROOT, 'dist', 'src', 'cli', 'manage.js')

export function tempDir (t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'united-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** A clean environment: only what the test gives, plus PATH and HOME. */
export function cleanEnv (env: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'warn', ...env }
}

export interface Run { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

export async function run (file: string, args: string[], opts: { cwd: string, env: Record<string, string> }): Promise<Run> {
  const child = spawn(process.execPath, [file, ...args], { cwd: opts.cwd, env: cleanEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] })
  const out = collect(child)
  const [code, signal] = await once(child, 'exit') as [number | null, NodeJS.Signals | null]
  return { code, signal, ...out.text() }
}

function collect (child: ChildProcess): { text: () => { stdout: string, stderr: string } } {
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  return { text: () => ({ stdout, stderr }) }
}

/** Starts the server and resolves once it prints its REST URL. */
export async function startServer (t: Test, opts: { cwd: string, env: Record<string, string> }): Promise<{ child: ChildProcess, url: string, output: () => { stdout: string, stderr: string } }> {
  const child = spawn(process.execPath, [SERVER], { cwd: opts.cwd, env: cleanEnv({ HTTP_PORT: '0', MQTT_PORT: '0', ...opts.env }), stdio: ['ignore', 'pipe', 'pipe'] })
  const out = collect(child)
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (): void => {
      const m = /REST API\s+(http:\/\/\S+?)\/?\s/.exec(out.text().stdout)
      if (m !== null) { child.stdout?.off('data', onData); resolve(m[1] as string) }
    }
    child.stdout?.on('data', onData)
    child.once('exit', (code) => { reject(new Error(`server exited with ${String(code)}: ${out.text().stderr}`)) })
  })
  return { child, url, output: out.text }
}

/** POST a JSON body to a running server; the parsed answer. */
export async function postJson (base: string, path: string, body: unknown, jwt?: string): Promise<Record<string, string>> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(jwt === undefined ? {} : { authorization: `Bearer ${jwt}` }) }, body: JSON.stringify(body) })
  return await res.json() as Record<string, string>
}

/** Every stored frame id of a robot, page by page, newest first. */
export async function storedFrameIds (base: string, uuid: string, jwt: string): Promise<string[]> {
  const ids: string[] = []
  let cursor: string | null = null
  do {
    const res = await fetch(`${base}/robots/${uuid}/frames?limit=1000${cursor === null ? '' : `&cursor=${cursor}`}`, { headers: { authorization: `Bearer ${jwt}` } })
    const page = await res.json() as { items: Array<{ frame_id: string }>, next_cursor: string | null }
    ids.push(...page.items.map((f) => f.frame_id))
    cursor = page.next_cursor
  } while (cursor !== null)
  return ids
}

/** The MQTT TCP port a server printed in its banner. */
export function mqttPortOf (stdout: string): number {
  return Number(/MQTT \(TCP\)\s+mqtt:\/\/[^:]+:(\d+)/.exec(stdout)?.[1])
}

/**
 * A database for the CLI (a file or a PostgreSQL database: another process
 * must reach it), and the server's app on it for checking afterwards; the app
 * is closed before the database is dropped.
 */
export async function cliDatabase (t: Test): Promise<{ url: string, cwd: string, app: () => Promise<FastifyInstance> }> {
  const cwd = tempDir(t)
  const db = pgBase === undefined ? { url: `sqlite://${join(cwd, 'united.sqlite')}`, drop: async () => {} } : await testDatabase()
  let app: FastifyInstance | undefined
  t.teardown(async () => {
    await app?.close()
    await db.drop()
  })
  return { url: db.url, cwd, app: async () => { app ??= await buildApp(testConfig(db.url)); return app } }
}
