// Watching a user's `robots/+/stats` subscription while their role on a robot
// changes (test/broker/roles.test.ts, test/cluster/roles.test.ts): whether
// and when a robot's stats start or stop reaching it, without a resubscription.
import { randomUUID } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import type { Test } from 'tap'
import { collect, messageWhere, sendFrame } from '../mqtt.js'

/** How long a change of role may take to reach an open subscription (docs/protocol.md §13). */
export const BOUND_MS = 1000

/** A robot's connection, subscribed to its ack topic. */
export interface Live { robot: { uuid: string }, client: MqttClient }

const stats = (robot: { uuid: string }): string => `robots/${robot.uuid}/stats`

/** When the subject's frame was sent and acked (its stats are published between), and whether they were delivered. */
interface Probe { sentAt: number, ackedAt: number, delivered: boolean }

/**
 * A user's `robots/+/stats` subscription, watched: each probe sends one frame
 * of the subject robot, then one of a control robot the user holds for good,
 * and waits for the control's stats; the subject's stats, published before,
 * have arrived by then if they were forwarded at all.
 */
export function watcher (client: MqttClient, control: Live) {
  const seen = collect(client, (tp) => tp.endsWith('/stats'))
  let x = 0
  const pause = async (): Promise<void> => { await new Promise((resolve) => { setTimeout(resolve, 20) }) }

  async function probe (subject: Live): Promise<Probe> {
    const sx = ++x
    const sentAt = Date.now()
    await sendFrame(subject.client, subject.robot.uuid, randomUUID(), { position_x: sx })
    const ackedAt = Date.now()
    const cx = ++x
    const sync = messageWhere(client, stats(control.robot), (b) => b.position_x === cx)
    await sendFrame(control.client, control.robot.uuid, randomUUID(), { position_x: cx })
    await sync
    return { sentAt, ackedAt, delivered: seen.some((m) => m.topic === stats(subject.robot) && m.body.position_x === sx) }
  }

  return {
    probe,
    /** Fails unless the subject's stats are delivered, at the latest for a frame sent BOUND_MS after `since`. */
    async starts (t: Test, subject: Live, since: number, msg: string): Promise<void> {
      for (;;) {
        const p = await probe(subject)
        if (p.delivered) { t.pass(`${msg} (delivered ${Math.max(0, p.sentAt - since)} ms after)`); return }
        if (p.sentAt > since + BOUND_MS) { t.fail(`${msg}: a frame sent ${p.sentAt - since} ms after is still not delivered`); return }
        await pause()
      }
    },
    /**
     * Fails if the subject's stats are delivered for a frame sent BOUND_MS
     * after `since`, or again once they stopped.
     */
    async stops (t: Test, subject: Live, since: number, msg: string): Promise<void> {
      let lastDelivered: number | null = null
      for (;;) {
        const p = await probe(subject)
        if (!p.delivered) break
        if (p.sentAt > since + BOUND_MS) { t.fail(`${msg}: a frame sent ${p.sentAt - since} ms after was still delivered`); return }
        lastDelivered = p.sentAt
        await pause()
      }
      for (let i = 0; i < 3; i++) {
        if ((await probe(subject)).delivered) { t.fail(`${msg}: delivered again after it had stopped`); return }
      }
      t.pass(`${msg} (${lastDelivered === null ? 'no frame delivered after' : `last delivered frame sent ${lastDelivered - since} ms after`})`)
    },
    /** Probes until `until` (a time), checking each is delivered: the access holds till then. */
    async holdsUntil (t: Test, subject: Live, until: number, msg: string): Promise<void> {
      let probes = 0
      while (Date.now() < until - 300) {
        const p = await probe(subject)
        if (!p.delivered && p.ackedAt < until - 50) { t.fail(`${msg}: a frame acked ${until - p.ackedAt} ms before the end was not delivered`); return }
        probes++
        await pause()
      }
      t.ok(probes > 0, `${msg} (${probes} probes)`)
    }
  }
}
