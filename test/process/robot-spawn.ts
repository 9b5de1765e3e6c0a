// The compiled example robot as a real process, against a real listening
// United (or anything else a test listens with).
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { build } from '../helper.js'
import { cleanEnv, ROOT, tempDir } from './spawn.js'

export const ROBOT = join(ROOT, 'dist', 'src', 'cli', 'robot.js')

/** The real app listening on an ephemeral HTTP port (MQTT over TCP too, on app.broker.port). */
export async function serve (t: Test, overrides: Record<string, string> = {}): Promise<{ app: FastifyInstance, url: string }> {
  const app = await build(t, overrides)
  return { app, url: await listenOn(app) }
}

export async function listenOn (app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const address = app.server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

export interface RobotProcess {
  child: ChildProcess
  output: () => string
  /** Resolves with the first match of `re` in everything printed (already or later). */
  waitFor: (re: RegExp) => Promise<RegExpExecArray>
  /** Resolves with the exit code. */
  exit: () => Promise<number | null>
}

export function spawnRobot (t: Test, args: string[]): RobotProcess {
  const child = spawn(process.execPath, [ROBOT, ...args], { env: cleanEnv({}), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { output += d.toString() })
  // 'close': the exit, and everything it printed read.
  const exited = once(child, 'close') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return {
    child,
    output: () => output,
    waitFor: async (re) => await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { done(); reject(new Error(`robot did not print ${String(re)} within 30 s:\n${output}`)) }, 30_000)
      const check = (): void => {
        const m = re.exec(output)
        if (m !== null) { done(); resolve(m) }
      }
      const onExit = (): void => { check(); done(); reject(new Error(`robot exited before printing ${String(re)}:\n${output}`)) }
      function done (): void {
        clearTimeout(timer)
        child.stdout?.off('data', check)
        child.stderr?.off('data', check)
        child.off('close', onExit)
      }
      child.stdout?.on('data', check)
      child.stderr?.on('data', check)
      child.once('close', onExit)
      check()
    }),
    exit: async () => (await exited)[0]
  }
}

/** A credentials file as fleet mode reads it. */
export function credentialsFile (t: Test, robots: Array<{ serial: string, secret: string }>): string {
  const file = join(tempDir(t), 'fleet.json')
  writeFileSync(file, JSON.stringify(robots.map((r) => ({ serial: r.serial, token: r.secret }))))
  return file
}

/** Lines printed for one robot (`<time> <serial>: …`), without the time. */
export function linesOf (output: string, serial: string): string[] {
  return output.split('\n').map((l) => l.replace(/^\S+ /, '')).filter((l) => l.startsWith(`${serial}: `))
}
