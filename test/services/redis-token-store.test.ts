// Cluster mode's robot tokens when Redis cannot answer: a token this node
// issued is still checked here (its own memory), and a token it does not
// know cannot be checked at all — the store throws instead of answering
// "unknown", so that the CONNECT gets CONNACK 3 and counts toward no log-in
// limit, rather than CONNACK 4 counted against the address of a fleet
// reconnecting to another node. Redis is a port nobody listens on, so no
// server is needed; the end-to-end case runs in test/cluster.
import { Redis } from 'ioredis'
import pino from 'pino'
import t from 'tap'
import { createRedisTokenStore, TokenStoreUnavailableError } from '../../src/cluster/tokens.js'
import { createRobotTokenService } from '../../src/services/robot-tokens.js'
import type { RobotService } from '../../src/services/robots.js'
import { freePort } from '../cluster/nodes.js'

t.test('Redis unreachable: own tokens still resolve, unknown ones cannot be checked', async (t) => {
  const redis = new Redis({ port: await freePort(), host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  redis.on('error', () => {})
  t.teardown(() => { redis.disconnect() })
  for (const up of [true, false]) {
    // isUp true: Redis is believed up but fails the command (just gone); false: known to be down.
    const store = createRedisTokenStore({ redis, isUp: () => up, log: pino({ level: 'silent' }), voidedTtlSeconds: 60 })
    t.teardown(async () => { await store.close() })
    await store.put('issued-here', 'robot-1', 60)
    t.same(await store.get('issued-here'), { robotUuid: 'robot-1' }, `isUp ${String(up)}: a token this node issued resolves`)
    await t.rejects(store.get('issued-elsewhere'), TokenStoreUnavailableError, `isUp ${String(up)}: another node's token cannot be checked`)
    await store.revokeRobot('robot-1').catch(() => {})
    t.same(await store.get('issued-here'), { voided: true }, `isUp ${String(up)}: voided here: this node knows it was voided`)

    const robotTokens = createRobotTokenService({ robots: {} as RobotService, store, ttlSeconds: 60 })
    await t.rejects(robotTokens.resolve('issued-elsewhere'), { code: 'UNITED_DATABASE_UNAVAILABLE', statusCode: 503 }, `isUp ${String(up)}: the service says DATABASE_UNAVAILABLE, not "unknown"`)
    await t.rejects(robotTokens.resolve('issued-here'), { code: 'UNITED_CREDENTIAL_REVOKED', statusCode: 401 }, `isUp ${String(up)}: the token voided here is revoked`)
  }
})
