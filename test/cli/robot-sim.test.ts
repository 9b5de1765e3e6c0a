// The example robot's made-up readings, on a simulated clock: every value is
// one the hardware frame type accepts, the battery drains and recharges, and
// the CPU works harder while the robot moves.
import t from 'tap'
import { validateFrame } from '../../src/contract/frames.js'
import { createSimulation } from '../../src/cli/robot-sim.js'
import { seeded } from '../random.js'

const valid = (frame: object): boolean => validateFrame(Buffer.from(JSON.stringify(frame)), 65536).ok

/** Three simulated hours at one position frame a second and a hardware frame every 5 s. */
function run (state: string, seed: number): Array<{ battery: number, cpu: number, temperature: number, memory: number, valid: boolean, speeds: number[] }> {
  const sim = createSimulation(seeded(seed))
  const start = Date.UTC(2026, 11, 7, 12)
  const readings = []
  let speeds: number[] = []
  for (let s = 0; s < 3 * 3600; s++) {
    const at = new Date(start + s * 1000)
    const position = sim.position(state, 1, at)
    speeds.push(position.data.speed)
    if (!valid({ id: `p${s}`, ...position })) throw new Error(`invalid position frame ${JSON.stringify(position)}`)
    if (s % 5 === 0) {
      const hardware = sim.hardware(state, at)
      readings.push({ ...hardware.data, valid: valid({ id: `h${s}`, ...hardware }), speeds })
      speeds = []
    }
  }
  return readings
}

t.test('a moving robot: valid hardware frames; the battery drains to 20 %, recharges standing still, and drains again', async (t) => {
  const readings = run('auto', 1)
  t.ok(readings.every((r) => r.valid), 'every frame is valid')
  const battery = readings.map((r) => r.battery)
  const low = battery.findIndex((b) => b <= 20)
  t.ok(low > 0, 'it reaches 20 %')
  const full = battery.findIndex((b, i) => i > low && b === 100)
  t.ok(full > low, 'then charges to 100 %')
  t.ok(battery.slice(low + 1, full).every((b, i) => b >= (battery[low + i] as number)), 'rising all the way')
  t.ok(readings.slice(low + 1, full).every((r) => r.speeds.every((v) => v === 0)), 'standing still while it charges')
  t.ok(battery.slice(full + 1).some((b) => b < 90), 'and drains again')
  t.ok(readings.every((r) => r.temperature > 25 && r.temperature < 80), 'temperatures a robot has')
})

t.test('the CPU works harder, and the battery drains faster, while the robot moves', async (t) => {
  const average = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length
  // The first 100 s: the same robot (same seed), before it could need charging.
  const idle = run('idle', 2).slice(0, 20)
  const moving = run('auto', 2).slice(0, 20)
  t.ok(idle.every((r) => r.valid), 'idle frames are valid too')
  t.ok(average(moving.map((r) => r.cpu)) > average(idle.map((r) => r.cpu)) + 15, 'more CPU')
  const used = (rs: typeof idle): number => (rs[0]?.battery as number) - (rs[19]?.battery as number)
  t.ok(used(idle) > 0, 'an idle robot drains its battery too')
  t.ok(used(moving) > used(idle) * 1.5, 'a moving one faster')
})
