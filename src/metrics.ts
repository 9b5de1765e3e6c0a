// Prometheus metrics (docs/operations.md §7), one registry per app so that several apps
// (tests) can live in one process. Counters are incremented where things
// happen; gauges are read when Prometheus scrapes.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

export function createMetrics () {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'united_' })
  const metric = { registers: [registry] }

  return {
    registry,
    framesReceived: new Counter({ name: 'united_frames_received_total', help: 'Data frames received from robots', ...metric }),
    framesStored: new Counter({ name: 'united_frames_stored_total', help: 'Data frames committed and acked ok (resends of a stored id included)', ...metric }),
    framesRejected: new Counter({ name: 'united_frames_rejected_total', help: 'Data frames acked with an error', labelNames: ['reason'] as const, ...metric }),
    batchSize: new Histogram({ name: 'united_frame_batch_size', help: 'Frames per INSERT', buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000], ...metric }),
    commitSeconds: new Histogram({ name: 'united_frame_commit_seconds', help: 'Time to commit one batch of frames', buckets: LATENCY_BUCKETS, ...metric }),
    ackSeconds: new Histogram({ name: 'united_frame_ack_seconds', help: 'Time from receiving a frame to publishing its ack', buckets: LATENCY_BUCKETS, ...metric }),
    /** Registers a gauge read at scrape time. */
    gauge (name: string, help: string, read: () => number): void {
      // eslint-disable-next-line no-new
      new Gauge({ name, help, ...metric, collect () { this.set(read()) } })
    },
    /** Registers a counter whose total is read at scrape time. */
    counter (name: string, help: string, read: () => number): void {
      // eslint-disable-next-line no-new
      new Counter({ name, help, ...metric, collect () { this.reset(); this.inc(read()) } })
    },
    /** Registers a labelled counter whose totals are read at scrape time. */
    labelledCounter (name: string, help: string, label: string, read: () => Record<string, number>): void {
      // eslint-disable-next-line no-new
      new Counter({
        name,
        help,
        labelNames: [label],
        ...metric,
        collect () {
          this.reset()
          for (const [key, value] of Object.entries(read())) this.inc({ [label]: key }, value)
        }
      })
    },
    /** Registers a labelled gauge read at scrape time. */
    labelledGauge (name: string, help: string, label: string, read: () => Record<string, number> | Promise<Record<string, number>>): void {
      // eslint-disable-next-line no-new
      new Gauge({
        name,
        help,
        labelNames: [label],
        ...metric,
        async collect () {
          const values = await read()
          for (const [key, value] of Object.entries(values)) this.set({ [label]: key }, value)
        }
      })
    }
  }
}

export type Metrics = ReturnType<typeof createMetrics>
