import t from 'tap'
import { CHANNELS, isSysTopic, ownChannel, parseTopic, robotTopic } from '../../src/contract/topics.js'

const UUID = '3f2b8c1e-9a4d-4e6f-8b7a-0c1d2e3f4a5b'

t.test('robotTopic builds robots/{uuid}/{channel} for every channel', async (t) => {
  t.equal(robotTopic(UUID, 'data'), `robots/${UUID}/data`)
  t.equal(robotTopic(UUID, 'ack'), `robots/${UUID}/ack`)
  t.equal(robotTopic(UUID, 'commands'), `robots/${UUID}/commands`)
  t.equal(robotTopic(UUID, 'commands/ack'), `robots/${UUID}/commands/ack`)
  t.equal(robotTopic(UUID, 'stats'), `robots/${UUID}/stats`)
  t.equal(robotTopic(UUID, 'presence'), `robots/${UUID}/presence`)
})

t.test('parseTopic reads back every topic robotTopic builds', async (t) => {
  t.same(CHANNELS, ['data', 'ack', 'commands', 'commands/ack', 'stats', 'presence'])
  for (const channel of CHANNELS) {
    t.same(parseTopic(robotTopic(UUID, channel)), { uuid: UUID, channel }, channel)
    t.same(parseTopic(robotTopic(UUID, channel), true), { uuid: UUID, channel }, `${channel} as a filter`)
  }
})

t.test('the + wildcard in the robot position is accepted only in a filter', async (t) => {
  t.same(parseTopic('robots/+/stats', true), { uuid: '+', channel: 'stats' })
  t.same(parseTopic('robots/+/presence', true), { uuid: '+', channel: 'presence' })
  t.equal(parseTopic('robots/+/stats'), null, 'a topic name is never a wildcard')
  t.equal(parseTopic('robots/+/stats', false), null)
})

t.test('+ anywhere but the robot position is not a robot topic', async (t) => {
  t.equal(parseTopic(`robots/${UUID}/+`, true), null)
  t.equal(parseTopic('+/+/stats', true), null)
  t.equal(parseTopic(`robots/${UUID}/commands/+`, true), null)
  t.equal(parseTopic('robots/+abc/stats', true), null, 'a partial wildcard is not a uuid')
})

t.test('# is never a robot topic', async (t) => {
  t.equal(parseTopic('#', true), null)
  t.equal(parseTopic('robots/#', true), null)
  t.equal(parseTopic('robots/+/#', true), null)
  t.equal(parseTopic(`robots/${UUID}/#`, true), null)
  t.equal(parseTopic(`robots/${UUID}/#`), null)
})

t.test('unknown channels are not robot topics', async (t) => {
  t.equal(parseTopic(`robots/${UUID}/telemetry`), null)
  t.equal(parseTopic(`robots/${UUID}/`), null)
  t.equal(parseTopic(`robots/${UUID}`), null)
  t.equal(parseTopic(`robots/${UUID}/DATA`), null, 'channels are case-sensitive')
  t.equal(parseTopic(`robots/${UUID}/ack/commands`), null)
})

t.test('extra levels are rejected', async (t) => {
  t.equal(parseTopic(`robots/${UUID}/data/extra`), null)
  t.equal(parseTopic(`robots/${UUID}/commands/ack/extra`), null)
  t.equal(parseTopic(`robots/${UUID}/stats/`), null, 'a trailing slash is an extra level')
  t.equal(parseTopic(`/robots/${UUID}/data`), null, 'a leading slash is an extra level')
  t.equal(parseTopic(`prefix/robots/${UUID}/data`), null)
})

t.test('only a lower-case hyphenated uuid names a robot', async (t) => {
  t.equal(parseTopic(`robots/${UUID.toUpperCase()}/data`), null, 'upper-case uuid')
  t.equal(parseTopic(`robots/${UUID.toUpperCase()}/stats`, true), null, 'upper-case uuid in a filter')
  t.equal(parseTopic(`robots/${UUID.replace(/-/g, '')}/data`), null, 'no hyphens')
  t.equal(parseTopic(`robots/${UUID.slice(1)}/data`), null, 'too short')
  t.equal(parseTopic(`robots/${UUID}0/data`), null, 'too long')
  t.equal(parseTopic(`robots/${UUID.replace('3', 'g')}/data`), null, 'not hex')
  t.equal(parseTopic('robots//data'), null, 'empty')
  t.equal(parseTopic('robots/1/data'), null, 'a numeric id is not a uuid')
})

t.test('topics outside robots/ are not robot topics', async (t) => {
  t.equal(parseTopic(''), null)
  t.equal(parseTopic('robots'), null)
  t.equal(parseTopic('robots/'), null)
  t.equal(parseTopic(`Robots/${UUID}/data`), null)
  t.equal(parseTopic(`robot/${UUID}/data`), null)
})

t.test('$SYS topics are recognised and are not robot topics', async (t) => {
  t.equal(isSysTopic('$SYS/broker/uptime'), true)
  t.equal(isSysTopic('$SYS/#'), true)
  t.equal(isSysTopic('$SYS/'), true)
  t.equal(isSysTopic('$SYS'), false, '$SYS without a level is not under $SYS/')
  t.equal(isSysTopic(`robots/${UUID}/data`), false)
  t.equal(isSysTopic('$sys/broker'), false, '$SYS is case-sensitive')
  t.equal(parseTopic('$SYS/broker/uptime'), null)
  t.equal(parseTopic('$SYS/#', true), null)
  t.equal(parseTopic(`$SYS/robots/${UUID}/data`), null)
})

t.test("ownChannel reads a robot's own topics and nothing else", async (t) => {
  for (const channel of CHANNELS) t.equal(ownChannel(robotTopic(UUID, channel), UUID), channel, channel)
  const other = '00000000-0000-4000-8000-000000000000'
  for (const topic of [robotTopic(other, 'data'), `robots/${UUID}`, `robots/${UUID}/`, `robots/${UUID}/nope`, `robots/${UUID}x/data`, `robots/${UUID}/data/x`, `x/robots/${UUID}/data`, `$SYS/${UUID}/data`]) {
    t.equal(ownChannel(topic, UUID), null, topic)
  }
})
