// SQLite's connections: which sqlite3 handle runs what, the writer queue,
// and the read queue with its statement timeout (src/db/README.md,
// "Connections"). On a file, three handles, each with one kind of work:
// - frames: the frame writer's INSERTs (Database.sqliteIngest), nothing else,
//   so that no read ever holds the handle a frame batch needs;
// - writes: transactions, and every other statement that may write, in the
//   writer queue (Database.serialized) with the frame batches, one at a time,
//   so that two writers never meet in SQLite's busy handler;
// - reads: every other SELECT, one at a time, each stopped by
//   sqlite3_interrupt() when it runs longer than the statement timeout;
// - history: the same for the reads of aggregates and exports
//   (Database.historyReads), which may each take seconds: on the reads
//   handle, a log-in's or a command's short read would queue behind them.
// WAL lets the reads run beside the writes. An in-memory database is one
// connection by nature: the three are the same handle, writes still take the
// writer queue, and reads are not timed (an interrupt would stop whatever
// else that one handle is running, a frame batch included).
//
// Why reads go one at a time: node-sqlite3 runs every statement on libuv's
// thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise). Sequelize
// hands a raw query over inside sqlite3's serialize(), which queues it behind
// the handle's running statement, but a model query first reads its table's
// columns and then hands its statement over outside serialize(), in the
// default "parallel" mode: each takes a pool thread at once and waits there
// for the handle's mutex. Eight such reads took all four threads, and the
// frame writer's INSERT, on its own handle, queued behind the other reads in
// the pool's FIFO: measured (2 cores, a robot sending a frame every 20 ms
// while eight ~0.8-s reads ran), one ack in 6.8 s before, p50 1.5 ms and
// max 18 ms with the reads one at a time. One at a time costs the reads
// nothing: one sqlite3 connection runs one statement at a time anyway. The
// pool's threads then go to at most one read, one writer-queue statement and
// one scrypt (services/secrets.ts), and one stays for file I/O and DNS.
import { AsyncLocalStorage } from 'node:async_hooks'
import { QueryTypes, TimeoutError, type Sequelize } from 'sequelize'

export interface SqliteConnections {
  /** Runs work in the writer queue; the statements it makes outside a transaction run on the writes handle. */
  serialized: <T>(work: () => Promise<T>) => Promise<T>
  /** Runs one statement on the frames handle (call it inside `serialized`). */
  ingest: (sql: string, params: unknown[]) => Promise<void>
  /** Runs work whose reads (aggregates, exports) take the history handle, not the one short reads share. */
  history: <T>(work: () => Promise<T>) => Promise<T>
  /** Runs work (the migrations) with reads neither timed nor bounded in their wait. */
  untimed: <T>(work: () => Promise<T>) => Promise<T>
}

/** sqlite3's Database, as far as this file uses it. */
interface SqliteHandle {
  configure: (option: 'busyTimeout', value: number) => void
  run: (sql: string, params: unknown[], cb: (err: Error | null) => void) => void
  exec: (sql: string, cb: (err: Error | null) => void) => void
  interrupt: () => void
  serialize: () => void
}

interface SqliteManager {
  getConnection: (o?: { uuid?: string }) => Promise<SqliteHandle>
  releaseConnection: (connection: SqliteHandle) => void
}

type Query = (sql: string | { query: string }, options?: { type?: string, transaction?: unknown }) => Promise<unknown>

/** Sequelize's key of each handle (its connection manager caches handles by key and closes them all at close()). */
const FRAMES = 'united-frames'
const WRITES = 'united-transactions'
const READS = 'default'
const HISTORY = 'united-history'

/**
 * A statement that may write, whatever type the caller gave it. A read
 * mistaken for a write is only slower (it takes the writer queue); a write
 * mistaken for a read would fail on the read handle, which is query_only.
 */
const WRITE_WORD = /\b(INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP|ALTER|VACUUM|REINDEX|ATTACH|DETACH)\b/i

/** After the deadline, how often the read handle is interrupted again until its statement is stopped (ms). */
const INTERRUPT_EVERY_MS = 50

/** The error of a read stopped or refused by the statement timeout: a Sequelize TimeoutError, which the HTTP layer answers 503. */
export function statementTimeout (message: string, sql?: string): TimeoutError {
  const parent = Object.assign(new Error(message), { code: 'SQLITE_INTERRUPT', sql })
  return new TimeoutError(parent as unknown as ConstructorParameters<typeof TimeoutError>[0])
}

/**
 * Takes over how Sequelize picks SQLite connections and runs its queries.
 * `timeoutMs`: how long a read may run, and wait for the read handle, before
 * it fails (0: no limit; a file only).
 */
export function sqliteConnections (sequelize: Sequelize, file: boolean, timeoutMs: number): SqliteConnections {
  const manager = sequelize.connectionManager as unknown as SqliteManager
  const getConnection = manager.getConnection.bind(manager)

  // Each handle is opened once, tuned, and kept until Sequelize's close()
  // closes every handle it opened. On a file, Sequelize itself would open a
  // new handle for each transaction and close it at its end: every command
  // issued or acknowledged paid for opening the file and reading its schema
  // again; transactions run one at a time, so they share the writes handle.
  const handles = new Map<string, Promise<SqliteHandle>>()
  async function open (key: string): Promise<SqliteHandle> {
    const handle = await getConnection({ uuid: key })
    // A busy timeout makes a writer wait for another process's write (the
    // manage CLI, a second node on the same file is not supported) instead
    // of failing with SQLITE_BUSY.
    handle.configure('busyTimeout', 10_000)
    if (file) {
      await exec(handle, 'PRAGMA journal_mode=WAL;')
      if (key === READS || key === HISTORY) {
        await exec(handle, 'PRAGMA query_only=1;')
        handle.serialize() // one statement at a time on libuv's pool (above)
      }
    }
    return handle
  }
  function handle (key: string): Promise<SqliteHandle> {
    const k = file ? key : READS // in memory, Sequelize has one handle whatever the key
    let opened = handles.get(k)
    if (opened === undefined) {
      opened = open(k)
      handles.set(k, opened)
      opened.catch(() => { handles.delete(k) })
    }
    return opened
  }

  // The writer queue. The work holding its turn is marked in an
  // AsyncLocalStorage, so that the statements it makes outside a transaction
  // go to the writes handle and not to the queue again (which would wait for
  // itself). `turn` is the one work whose mark counts: a callback started
  // during a turn inherits its mark, but once the turn has ended it no
  // longer passes for it.
  const turns = new AsyncLocalStorage<object>()
  let turn: object | null = null
  let writer: Promise<unknown> = Promise.resolve()
  async function serialized<T> (work: () => Promise<T>): Promise<T> {
    const run = writer.then(async () => {
      const mine = {}
      turn = mine
      try {
        return await turns.run(mine, work)
      } finally {
        turn = null
      }
    })
    writer = run.catch(() => {})
    return await run
  }
  const inTurn = (): boolean => turn !== null && turns.getStore() === turn

  // Work marked as history reads (aggregates, exports) reads on its own handle.
  const historyWork = new AsyncLocalStorage<true>()
  const readKey = (): string => historyWork.getStore() === true ? HISTORY : READS

  manager.getConnection = async (options?: { uuid?: string }) => {
    const uuid = options?.uuid
    const transaction = uuid !== undefined && uuid !== READS
    return await handle(transaction || inTurn() ? WRITES : readKey())
  }
  // Sequelize releases a transaction's handle by closing it; the handles
  // here stay open, and Sequelize's close() closes every one it opened.
  manager.releaseConnection = () => {}

  // The read queues, one per read handle: one read at a time on each, each
  // waiting at most `timeoutMs` for its turn and running at most `timeoutMs`.
  let limit = file ? timeoutMs : 0
  interface Lane { key: string, reading: boolean, waiting: Array<() => void> }
  const lanes = new Map<string, Lane>([READS, HISTORY].map((key) => [key, { key, reading: false, waiting: [] }]))
  async function read<T> (work: () => Promise<T>, sql: string): Promise<T> {
    if (!file) return await work()
    const lane = lanes.get(readKey()) as Lane
    if (lane.reading) await waitForRead(lane, limit)
    else lane.reading = true
    try {
      return await timed(lane, work, sql)
    } finally {
      const next = lane.waiting.shift()
      if (next !== undefined) next() // the turn passes on
      else lane.reading = false
    }
  }
  async function waitForRead (lane: Lane, ms: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const go = (): void => {
        if (timer !== undefined) clearTimeout(timer)
        resolve()
      }
      lane.waiting.push(go)
      const timer = ms <= 0
        ? undefined
        : setTimeout(() => {
          lane.waiting.splice(lane.waiting.indexOf(go), 1)
          reject(statementTimeout(`statement timeout: waited more than ${ms} ms for the database`))
        }, ms)
    })
  }
  // sqlite3_interrupt() stops whatever the handle runs, and the read handle
  // runs this read alone. An interrupt that lands between two of the read's
  // statements (Sequelize reads a table's columns first) is forgotten when
  // the next one starts, so it is repeated until the read ends.
  async function timed<T> (lane: Lane, work: () => Promise<T>, sql: string): Promise<T> {
    if (limit <= 0) return await work()
    const ms = limit
    const reader = await handle(lane.key)
    const interrupt = (): void => { try { reader.interrupt() } catch {} }
    let again: NodeJS.Timeout | undefined
    let expired = false
    const deadline = setTimeout(() => {
      expired = true
      interrupt()
      again = setInterval(interrupt, INTERRUPT_EVERY_MS)
    }, ms)
    try {
      return await work()
    } catch (err) {
      if (expired && isInterrupt(err)) throw statementTimeout(`statement timeout: the query ran longer than ${ms} ms and was cancelled`, sql)
      throw err
    } finally {
      clearTimeout(deadline)
      clearInterval(again)
    }
  }

  // Every query Sequelize runs (models, query interface, raw) comes here.
  const query = sequelize.query.bind(sequelize) as unknown as Query
  ;(sequelize as unknown as { query: Query }).query = async (sql, options) => {
    if (options?.transaction != null || inTurn()) return await query(sql, options)
    const text = typeof sql === 'string' ? sql : sql.query
    if (options?.type === QueryTypes.SELECT && !WRITE_WORD.test(text)) return await read(async () => await query(sql, options), text)
    return await serialized(async () => await query(sql, options))
  }

  return {
    serialized,
    async ingest (sql: string, params: unknown[]): Promise<void> {
      const frames = await handle(FRAMES)
      await new Promise<void>((resolve, reject) => { frames.run(sql, params, (err) => { if (err === null) resolve(); else reject(err) }) })
    },
    async history<T> (work: () => Promise<T>): Promise<T> {
      return await historyWork.run(true, work)
    },
    async untimed<T> (work: () => Promise<T>): Promise<T> {
      const before = limit
      limit = 0
      try {
        return await work()
      } finally {
        limit = before
      }
    }
  }
}

function isInterrupt (err: unknown): boolean {
  const e = err as { code?: unknown, original?: { code?: unknown } }
  return e.code === 'SQLITE_INTERRUPT' || e.original?.code === 'SQLITE_INTERRUPT'
}

async function exec (handle: SqliteHandle, sql: string): Promise<void> {
  await new Promise<void>((resolve, reject) => { handle.exec(sql, (err) => { if (err === null) resolve(); else reject(err) }) })
}
