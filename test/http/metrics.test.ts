import t from 'tap'
import { build } from '../helper.js'
import { ownedRobot } from '../factory.js'
import { connectRobot, nextMessage, positionFrame, subscribe } from '../mqtt.js'

/** The value of one sample line of the Prometheus text format. */
function sample (text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `))
  return line === undefined ? undefined : Number(line.split(' ')[1])
}

t.test('GET /metrics exposes frames, batches, ack latency, queue depth, connections and commands', async (t) => {
  const app = await build(t)
  const { robot } = await ownedRobot(app)
  const client = await connectRobot(t, app, robot)
  await subscribe(client, `robots/${robot.uuid}/ack`)
  for (const [id, payload] of [['m1', positionFrame('m1')], ['m2', positionFrame('m2')], ['bad', '{"id":"bad","type":9,"data":{}}']] as const) {
    const ack = nextMessage(client, `robots/${robot.uuid}/ack`)
    await client.publishAsync(`robots/${robot.uuid}/data`, payload, { qos: 1 })
    t.match(await ack, { id })
  }

  const res = await app.inject({ method: 'GET', url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain/)
  const text = res.body
  t.equal(sample(text, 'united_frames_received_total'), 3)
  t.equal(sample(text, 'united_frames_stored_total'), 2)
  t.equal(sample(text, 'united_frames_rejected_total{reason="invalid"}'), 1)
  t.equal(sample(text, 'united_frame_ack_seconds_count'), 2)
  t.ok((sample(text, 'united_frame_batch_size_count') ?? 0) >= 1, 'batches observed')
  t.ok((sample(text, 'united_frame_commit_seconds_count') ?? 0) >= 1, 'commit latency observed')
  t.equal(sample(text, 'united_frame_queue_depth'), 0)
  t.equal(sample(text, 'united_connected_robots'), 1)
  t.equal(sample(text, 'united_connected_users'), 0)
  t.equal(sample(text, 'united_commands{status="pending"}'), 0)
  t.match(text, /united_process_resident_memory_bytes \d+/, 'process metrics')
})
