// Cluster mode (docs/protocol.md §11, §13.4): an API key deleted through one node
// ends at once on every node: its MQTT connections there close (the
// apiKeyRevoked event relayed over Redis), and its cached check is dropped.
import { api, clusterTest, login, mqttTo, refusedAt } from './nodes.js'

clusterTest('an API key deleted through node A closes its connection on node B; the user\'s other key stays', {}, async (t, { nodes: [a, b], staff }) => {
  const user = await api(a, 'POST', '/admin/api/users', staff, { username: 'u-key', password: 'u-key-password' })
  t.equal(user.status, 201)
  const jwt = await login(a, 'u-key', 'u-key-password')
  const doomed = await api(a, 'POST', '/users/me/api_keys', jwt, { name: 'doomed' })
  const kept = await api(a, 'POST', '/users/me/api_keys', jwt, { name: 'kept' })
  t.equal(doomed.status, 201)
  t.equal(kept.status, 201)
  const key = doomed.body.key as string

  t.equal((await api(b, 'GET', '/users/me', key)).status, 200, 'the key works on B (and is cached there)')
  const client = await mqttTo(t, b, { username: 'u-key', password: key })
  const other = await mqttTo(t, b, { username: 'u-key', password: kept.body.key as string })
  const closedAt = new Promise<number>((resolve) => { client.once('close', () => { resolve(Date.now()) }) })
  const deletedAt = Date.now()
  t.equal((await api(a, 'DELETE', `/users/me/api_keys/${doomed.body.id as string}`, jwt)).status, 204)
  const ms = await closedAt - deletedAt
  t.ok(ms < 3000, `closed on B ${ms} ms after the deletion on A`)
  t.ok(other.connected, 'the other key\'s connection on B stays')
  t.equal((await api(b, 'GET', '/users/me', key)).status, 401, 'B refuses the key at once on REST')
  t.equal(await refusedAt(t, b, { username: 'u-key', password: key }), 5, 'and on MQTT (revoked: CONNACK 5)')
})
