// `npm run manage -- createsuperuser` on a real terminal: the compiled CLI
// runs under a pseudo-terminal (util-linux's `script`, part of every Debian
// base system), the test types at its prompts, and everything the terminal
// shows is captured. The username is echoed, the password never (not when
// typed at its prompt, not when pasted ahead with the other answers), and the
// user it creates logs in with it. Backspace edits, Ctrl-C and Ctrl-D cancel
// without creating anyone. Against a real database: a SQLite file in a temp
// directory, or a fresh PostgreSQL database with TEST_DATABASE_URL.
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { cleanEnv, cliDatabase, MANAGE, run } from './spawn.js'

const PASSWORD = 'pty-S3cret-Pa55word'
const PROMPT_WAIT = 60_000 // generous: a loaded machine, a cold start of the CLI

interface Terminal { child: ChildProcess, shown: () => string, waitFor: (text: string, from?: number) => Promise<number>, type: (keys: string) => void, exit: () => Promise<number | null> }

/** `createsuperuser` under a pseudo-terminal: what it shows, keys to type. */
function terminal (t: Test, cwd: string, url: string): Terminal {
  const quote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`
  const command = [process.execPath, MANAGE, 'createsuperuser'].map(quote).join(' ')
  const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd, env: cleanEnv({ DATABASE_URL: url }), stdio: ['pipe', 'pipe', 'pipe'] })
  let shown = ''
  let failed: Error | undefined
  child.on('error', (err) => { failed = new Error(`could not run \`script\` (util-linux) for a pseudo-terminal: ${err.message}`) })
  child.stdout?.on('data', (d: Buffer) => { shown += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { shown += d.toString() })
  const exited = once(child, 'exit')
  exited.catch(() => {}) // a failed spawn is reported by waitFor
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return {
    child,
    shown: () => shown,
    // Resolves with the position after `text`'s first appearance at or after `from`.
    waitFor: async (text, from = 0) => await new Promise<number>((resolve, reject) => {
      const check = (): boolean => {
        if (failed !== undefined) { clear(); reject(failed); return true }
        const at = shown.indexOf(text, from)
        if (at === -1) return false
        clear()
        resolve(at + text.length)
        return true
      }
      const onData = (): void => { check() }
      const onExit = (): void => { if (!check()) { clear(); reject(new Error(`exited before showing ${JSON.stringify(text)}; shown: ${JSON.stringify(shown)}`)) } }
      const timer = setTimeout(() => { clear(); reject(new Error(`${JSON.stringify(text)} not shown; shown: ${JSON.stringify(shown)}`)) }, PROMPT_WAIT)
      const clear = (): void => { clearTimeout(timer); child.stdout?.off('data', onData); child.stderr?.off('data', onData); child.off('exit', onExit); child.off('error', onData) }
      child.stdout?.on('data', onData)
      child.stderr?.on('data', onData)
      child.on('exit', onExit)
      child.on('error', onData)
      check()
    }),
    type: (keys) => { child.stdin?.write(keys) },
    exit: async () => {
      const [code] = await exited as [number | null]
      return code
    }
  }
}

const login = async (app: FastifyInstance, username: string, password: string): Promise<number> =>
  (await app.inject({ method: 'POST', url: '/users/obtain_token/', payload: { username, password } })).statusCode

/** The password, or any 6 characters of it, anywhere in what the terminal showed. */
function leaks (shown: string, password: string): string[] {
  const found: string[] = []
  for (let i = 0; i + 6 <= password.length; i++) if (shown.includes(password.slice(i, i + 6))) found.push(password.slice(i, i + 6))
  return found
}

t.test('the password is never shown while it is typed; the username is; the user logs in with it', async (t) => {
  const { url, cwd, app: appOn } = await cliDatabase(t)
  const term = terminal(t, cwd, url)
  let at = await term.waitFor('Username: ')
  term.type('Root\r')
  at = await term.waitFor('Password: ', at)
  t.match(term.shown().slice(0, at), /Username: Root/, 'the username was echoed (the terminal does show what is echoed)')
  term.type(`${PASSWORD}X`) // a typo…
  term.type('\u007f') // …taken back with Backspace
  term.type('\r')
  at = await term.waitFor('Password (again): ', at)
  term.type(`${PASSWORD}\r`)
  await term.waitFor('Superuser "Root" created', at)
  t.equal(await term.exit(), 0, 'exit 0')
  t.same(leaks(term.shown(), PASSWORD), [], 'no part of the password was shown')
  t.notOk(term.shown().includes('*'), 'not even as stars')

  const app = await appOn()
  t.equal(await login(app, 'Root', PASSWORD), 200, 'the user logs in with the password typed')
  t.equal(await login(app, 'Root', `${PASSWORD}X`), 401, 'Backspace took the typo back')
  const user = await app.services.users.findByUsername('Root')
  t.equal(user?.is_staff, true, 'a staff user')

  // Usernames are unique without regard to case here too, on either database.
  const again = await run(MANAGE, ['createsuperuser', '--username', 'ROOT', '--password', 'another-password'], { cwd, env: { DATABASE_URL: url } })
  t.equal(again.code, 1, 'ROOT next to Root: exit 1')
  t.match(again.stderr, /already exists/)
})

t.test('answers typed ahead (pasted at once) are not echoed by the terminal either', async (t) => {
  const { url, cwd, app: appOn } = await cliDatabase(t)
  const term = terminal(t, cwd, url)
  const at = await term.waitFor('Username: ')
  term.type(`Pasted\r${PASSWORD}\r\n${PASSWORD}\r`) // CR LF counts as one Enter
  await term.waitFor('Superuser "Pasted" created', at)
  t.equal(await term.exit(), 0)
  t.same(leaks(term.shown(), PASSWORD), [], 'no part of the password was shown')
  const app = await appOn()
  t.equal(await login(app, 'pasted', PASSWORD), 200, 'the user logs in')
})

t.test('Ctrl-C at the password prompt cancels: nothing shown, nobody created', async (t) => {
  const { url, cwd, app: appOn } = await cliDatabase(t)
  const term = terminal(t, cwd, url)
  let at = await term.waitFor('Username: ')
  term.type('Quitter\r')
  at = await term.waitFor('Password: ', at)
  term.type(`${PASSWORD}\u0003`)
  await term.waitFor('cancelled', at)
  t.equal(await term.exit(), 130, 'exit 130, as for an interrupt')
  t.same(leaks(term.shown(), PASSWORD), [], 'no part of the password was shown')
  const app = await appOn()
  t.equal(await app.services.users.findByUsername('Quitter'), null, 'nobody was created')
})

t.test('Ctrl-D on an empty line ends the input: nobody created; different passwords are refused', async (t) => {
  const { url, cwd, app: appOn } = await cliDatabase(t)
  const ended = terminal(t, cwd, url)
  const at = await ended.waitFor('Username: ')
  ended.type('\u0004')
  await ended.waitFor('the input ended', at)
  t.equal(await ended.exit(), 130)

  const differ = terminal(t, cwd, url)
  let at2 = await differ.waitFor('Username: ')
  differ.type('Mismatch\r')
  at2 = await differ.waitFor('Password: ', at2)
  differ.type(`${PASSWORD}\r`)
  at2 = await differ.waitFor('Password (again): ', at2)
  differ.type(`${PASSWORD}-other\r`)
  await differ.waitFor('do not match', at2)
  t.equal(await differ.exit(), 2)
  t.same(leaks(differ.shown(), PASSWORD), [], 'no part of either password was shown')

  const app = await appOn()
  t.equal((await app.services.users.list()).items.length, 0, 'nobody was created')
})
