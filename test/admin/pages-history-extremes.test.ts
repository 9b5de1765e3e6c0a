// Issue 32, end to end: a robot whose sensor glitched sent two valid frames
// with speeds 1e10 and 10000000000.000002, another one frame with position_x
// 1.37e12. Opening their admin pages looped in the chart's tick function
// until V8 aborted, and the broker, the REST API and the admin went down
// together (and again after each restart). Here the frames go through the
// real broker, a staff user opens both pages, and the charts show a padded
// axis in exponent notation; afterwards the same server still answers HTTP
// and acks the robots' frames. charts-fuzz.test.ts draws every chart kind
// over every magnitude.
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { createRobot } from '../factory.js'
import { connectRobot, listen, sendFrame, suback } from '../mqtt.js'
import { staffSetup } from './browser.js'
import { section, unescape } from './html.js'

t.test('frames at 1e10 and 10000000000.000002, and a position at 1.37e12: the robot pages draw them and the server stays up', async (t) => {
  const { app, browser } = await staffSetup(t)
  const glitching = await createRobot(app)
  const faraway = await createRobot(app)
  const robots = await Promise.all([glitching, faraway].map(async (robot) => {
    const client = await connectRobot(t, app, robot)
    t.same(await suback(client, `robots/${robot.uuid}/ack`), [1])
    return client
  }))
  const [speedy, far] = robots as [typeof robots[0], typeof robots[0]]
  t.same(await sendFrame(speedy, glitching.uuid, 's1', { speed: 1e10 }), { id: 's1', status: 'ok' }, 'speed 1e10 stored')
  t.same(await sendFrame(speedy, glitching.uuid, 's2', { speed: 10000000000.000002 }), { id: 's2', status: 'ok' }, 'speed 10000000000.000002 stored')
  t.same(await sendFrame(far, faraway.uuid, 'p1', { position_x: 1.37e12 }), { id: 'p1', status: 'ok' }, 'position_x 1.37e12 stored')

  const page = await browser.get(`/admin/robots/${glitching.uuid}`)
  t.equal(page.statusCode, 200, 'the page of the robot with the speeds')
  const speed = unescape(section(page.body, '<figure class="chart" id="chart-speed">', '</figure>'))
  t.match(speed, 'average from 1e10 to 1e10 m/s')
  t.match(speed, 'text-anchor="end">1e10</text>', 'a padded axis around 1e10, in exponent notation')
  t.notMatch(page.body, /NaN|Infinity/)

  const path = await browser.get(`/admin/robots/${faraway.uuid}`)
  t.equal(path.statusCode, 200, 'the page of the robot far away')
  const chart = unescape(section(path.body, '<figure class="chart" id="chart-path">', '</figure>'))
  t.match(chart, 'x from 1.37e12 to 1.37e12 m')
  t.match(chart, />1\.3e12<\/text>/, 'x labels in exponent notation')
  t.notMatch(path.body, /NaN|Infinity/)

  // the same process still serves HTTP (over the network, not inject) and the broker still acks
  await listen(app)
  const { port } = app.server.address() as AddressInfo
  const health = await fetch(`http://127.0.0.1:${port}/health`)
  t.equal(health.status, 200, 'GET /health over HTTP')
  t.same(await sendFrame(speedy, glitching.uuid, 's3', { speed: 1 }), { id: 's3', status: 'ok' }, 'the broker acks the next frame')
  t.equal((await browser.get(`/admin/robots/${glitching.uuid}?range=week`)).statusCode, 200, 'and the page draws again')
})
