// A site's whole fleet behind one NAT address, with the default log-in
// limits: robots that are dead (disabled, deleted) and an old client keep
// retrying their dead credentials every second for two minutes, beside 20
// live robots that keep reconnecting and a user who keeps logging in. Every
// live robot reconnects every time and the user logs in every time: the
// dead credentials block only their own identities.
import t from 'tap'
import { connackFrom, httpFrom } from '../addresses.js'
import { createRobot, createUser } from '../factory.js'
import { build } from '../helper.js'

const NAT = '127.0.0.40'
const DURATION_MS = 120_000
const RECONNECT_EVERY_MS = 6000

const pause = async (ms: number): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, ms) }) }

t.test('one dead robot retrying at 1 Hz beside 20 live robots and a user on one address: for two minutes everyone live gets in', async (t) => {
  const app = await build(t) // the default limits: 10 per identity and address, 100 per address, a 60 s window
  const user = await createUser(app)
  const live = await Promise.all(Array.from({ length: 20 }, async () => await createRobot(app)))
  const disabled = await createRobot(app)
  const deleted = await createRobot(app)
  await app.services.robots.update(disabled.uuid, { enabled: false }, { actor: null })
  await app.services.robots.remove(deleted.uuid, { actor: null })

  const end = Date.now() + DURATION_MS
  const failures: string[] = []
  let robotLogins = 0
  let userLogins = 0
  let deadAttempts = 0

  // Dead credentials, each retried every second until the end.
  const retrying = async (what: () => Promise<unknown>): Promise<void> => {
    while (Date.now() < end) {
      await what()
      deadAttempts++
      await pause(1000)
    }
  }
  const dead = [
    retrying(async () => await httpFrom(app, NAT, 'POST', '/robots/robot/obtain_token', { serial: disabled.serial, token: disabled.secret })),
    retrying(async () => await connackFrom(t, app, NAT, 'tcp', { username: disabled.uuid, password: 'f'.repeat(64) })),
    retrying(async () => await httpFrom(app, NAT, 'POST', '/robots/robot/obtain_token', { serial: deleted.serial, token: deleted.secret })),
    // an old mosquitto_sub left running with a password that never worked
    retrying(async () => await connackFrom(t, app, NAT, 'ws', { username: 'mosquitto', password: 'not-a-token' }))
  ]

  // Live robots: obtain a token, connect, stay a while, and again; the user logs in meanwhile.
  const liveRobot = async (robot: typeof live[number], offset: number): Promise<void> => {
    await pause(offset)
    while (Date.now() < end) {
      const token = await httpFrom(app, NAT, 'POST', '/robots/robot/obtain_token', { serial: robot.serial, token: robot.secret })
      if (token.statusCode !== 201) failures.push(`robot ${robot.serial}: obtain_token ${token.statusCode}`)
      else {
        const code = await connackFrom(t, app, NAT, 'tcp', { username: robot.uuid, password: token.body.access_token as string })
        if (code !== 0) failures.push(`robot ${robot.serial}: CONNACK ${code}`)
        else robotLogins++
      }
      await pause(RECONNECT_EVERY_MS)
    }
  }
  const liveUser = async (): Promise<void> => {
    while (Date.now() < end) {
      const res = await httpFrom(app, NAT, 'POST', '/users/obtain_token/', { username: user.username, password: user.password })
      if (res.statusCode !== 200) failures.push(`user: obtain_token ${res.statusCode}`)
      else {
        const code = await connackFrom(t, app, NAT, 'ws', { username: user.username, password: res.body.access as string })
        if (code !== 0) failures.push(`user: CONNACK ${code}`)
        else userLogins++
      }
      await pause(RECONNECT_EVERY_MS)
    }
  }

  await Promise.all([...dead, ...live.map(async (robot, i) => { await liveRobot(robot, i * 250) }), liveUser()])
  t.same(failures, [], 'no live robot and no log-in of the user was refused')
  t.ok(robotLogins >= 20 * 15, `the live robots reconnected ${robotLogins} times`)
  t.ok(userLogins >= 15, `the user logged in ${userLogins} times`)
  // Once an identity is blocked its refusals are held a second, so a client
  // that waits a second between tries tries about every two seconds.
  t.ok(deadAttempts >= 4 * 50, `the dead credentials were tried ${deadAttempts} times`)
})
