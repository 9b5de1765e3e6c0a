// Secrets at rest: user passwords and robot secrets are stored only as
// hashes, compared in constant time. Each stored hash names its scheme:
//
// - `scrypt$N$r$p$salt$key` for anything a person chose: user passwords and
//   robot secrets an admin typed in. A slow hash is what stands between a
//   copy of the table and a guessed password. The parameters travel inside
//   the hash, so they can be raised later without invalidating what is stored.
// - `sha256$digest` for robot secrets the server generated (192 random bits,
//   robots.create and rotate). Nobody guesses 2^192 values, slow hash
//   or not, so a slow hash only costs CPU: about 30 ms of scrypt per
//   obtain_token, minutes for a fleet that reconnects at once. A plain
//   digest of a high-entropy token is what GitHub and others store for
//   theirs.
//
// verifySecret reads the scheme, so the hashes stored before the second
// scheme existed (scrypt of generated secrets) keep working; a stored hash it
// cannot read is a mismatch, never an exception.
import { AsyncLocalStorage } from 'node:async_hooks'
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'
import { setTimeout as pause } from 'node:timers/promises'
import { Errors, isError, withRetryAfter } from '../errors.js'

const N = 16384
const r = 8
const p = 1
const KEY_LENGTH = 32

/**
 * scrypt runs on libuv's thread pool (4 threads), which the SQLite driver
 * and file I/O share, and costs ~30 ms of CPU on one of the machine's cores:
 * unbounded, 32 concurrent bad log-ins took every thread and pushed the frame
 * acks' p50 from 3.8 ms to 578 ms. So at most SCRYPT_CONCURRENCY run at once,
 * each followed by a pause as long as it took (hashing then takes at most
 * half of one core, however many log-ins wait: the other core and a half stay
 * with ingest and the database). That is ~15 password checks a second, ample
 * for people logging in: robots with generated secrets never wait here
 * (sha256).
 *
 * The queue is shared fairly among client addresses (hashingFor names the
 * address of a log-in): each address waits in its own line, at most
 * SCRYPT_QUEUE_PER_ADDRESS deep, and the lines take turns. At most
 * SCRYPT_QUEUE wait in all; when that many wait, a newcomer takes the place
 * of the last in the longest line, if that line is longer than the
 * newcomer's would be. So twenty addresses sending bursts of bad log-ins
 * cannot keep a user or a robot from another address out: it waits one turn
 * of each line at most. A log-in refused here gets 503 UNITED_BUSY
 * (Retry-After: 1) at once rather than being queued for seconds, and the
 * log-in limits count it toward its address. Hashing outside a log-in (staff
 * creating users or setting passwords, the command line) waits in a line of
 * its own without the per-address depth: it is authenticated work, and a
 * script creating users ten at a time must not get 503s.
 */
const SCRYPT_CONCURRENCY = 1
const SCRYPT_QUEUE = 64
const SCRYPT_QUEUE_PER_ADDRESS = 8

interface Waiter { go: () => void, refuse: (err: Error) => void }
let hashing = 0
let waitingCount = 0
/** One line per address; the map's order is the order of turns (a line that had its turn goes last). */
const lines = new Map<string | symbol, Waiter[]>()
const addressOfLogin = new AsyncLocalStorage<string>()
/** The line of hashing done outside any log-in (no client address is a symbol). */
const LOCAL = Symbol('not a log-in')
const busy = (): Error => withRetryAfter(new Errors.BUSY(), 1)

/** Runs `fn` with the password checks it makes queued in `address`'s line. */
export async function hashingFor<T> (address: string, fn: () => Promise<T>): Promise<T> {
  return await addressOfLogin.run(address, fn)
}

/** Waits for a place to hash, in the caller's line; throws BUSY when there is no room. */
async function place (): Promise<void> {
  if (hashing < SCRYPT_CONCURRENCY) { hashing++; return }
  const login = addressOfLogin.getStore()
  const address = login ?? LOCAL
  const line = lines.get(address) ?? []
  if (login !== undefined && line.length >= SCRYPT_QUEUE_PER_ADDRESS) throw busy()
  if (waitingCount >= SCRYPT_QUEUE) {
    let longest: Waiter[] = line
    let longestAddress: string | symbol = address
    for (const [a, l] of lines) if (l.length > longest.length) { longest = l; longestAddress = a }
    if (longest.length <= line.length + 1) throw busy()
    ;(longest.pop() as Waiter).refuse(busy())
    waitingCount--
    if (longest.length === 0) lines.delete(longestAddress)
  }
  await new Promise<void>((resolve, reject) => {
    line.push({ go: resolve, refuse: reject })
    waitingCount++
    if (!lines.has(address)) lines.set(address, line)
  })
}

/** The place passes to the first of the next line in turn, or is freed when nobody waits. */
function handOver (): void {
  const turn = lines.entries().next()
  if (turn.done === true) { hashing--; return }
  const [address, line] = turn.value
  const next = line.shift() as Waiter
  waitingCount--
  lines.delete(address)
  if (line.length > 0) lines.set(address, line) // its next waits for the other lines' turns
  next.go()
}

async function scrypt (secret: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  await place()
  const started = performance.now()
  try {
    return await new Promise((resolve, reject) => {
      scryptCb(secret, salt, keylen, options, (err, key) => { err ? reject(err) : resolve(key) })
    })
  } finally {
    // The caller has its answer now; the next in line, if any, waits out the
    // pause (nobody waiting: the place is free at once, and no timer is left).
    if (waitingCount === 0) handOver()
    else void pause(Math.min(performance.now() - started, 200)).then(handOver)
  }
}

export async function hashSecret (secret: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await scrypt(secret, salt, KEY_LENGTH, { N, r, p })
  return ['scrypt', N, r, p, salt.toString('base64url'), key.toString('base64url')].join('$')
}

const sha256 = (secret: string): Buffer => createHash('sha256').update(secret, 'utf8').digest()

/**
 * The hash of a secret the server generated (randomToken, 16 bytes or more):
 * one SHA-256, no salt (a random secret is its own salt). Never for a secret
 * a person chose: use hashSecret for those.
 */
export function hashGeneratedSecret (secret: string): string {
  return `sha256$${sha256(secret).toString('base64url')}`
}

// Bounds on the scrypt parameters read back from a stored hash: generous
// enough to raise N, r and p later, tight enough that a damaged row cannot
// make one log-in allocate gigabytes.
const MAX_COST = 1 << 20
const MAX_BLOCK = 32
const MAX_PARALLEL = 16
const isPowerOfTwo = (n: number): boolean => Number.isSafeInteger(n) && n > 1 && (n & (n - 1)) === 0
const inRange = (n: number, max: number): boolean => Number.isSafeInteger(n) && n >= 1 && n <= max

async function verifyScrypt (secret: string, parts: string[]): Promise<boolean> {
  if (parts.length !== 6) return false
  const [cost, blockSize, parallel] = parts.slice(1, 4).map((s) => /^\d{1,8}$/.test(s) ? Number(s) : NaN) as [number, number, number]
  if (!isPowerOfTwo(cost) || cost > MAX_COST || !inRange(blockSize, MAX_BLOCK) || !inRange(parallel, MAX_PARALLEL)) return false
  const salt = Buffer.from(parts[4] as string, 'base64url')
  const expected = Buffer.from(parts[5] as string, 'base64url')
  if (salt.length === 0 || expected.length < 16 || expected.length > 64) return false
  const actual = await scrypt(secret, salt, expected.length, { N: cost, r: blockSize, p: parallel, maxmem: 256 * cost * blockSize })
  return timingSafeEqual(actual, expected)
}

function verifySha256 (secret: string, parts: string[]): boolean {
  if (parts.length !== 2) return false
  const expected = Buffer.from(parts[1] as string, 'base64url')
  if (expected.length !== 32) return false
  return timingSafeEqual(sha256(secret), expected)
}

/** Whether `secret` matches `stored`, whichever scheme stored it; false for a hash it cannot read. */
export async function verifySecret (secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$')
  try {
    switch (parts[0]) {
      case 'scrypt': return await verifyScrypt(secret, parts)
      case 'sha256': return verifySha256(secret, parts)
      default: return false
    }
  } catch (err) {
    // A full queue is the server's load, not a wrong secret: it must not
    // answer 401, nor count against the address's log-in limit.
    if (isError(err, 'BUSY')) throw err
    return false // a stored hash that cannot be read
  }
}

let dummy: Promise<string> | undefined
/**
 * Spend the same time as a real check when the user or robot does not exist,
 * so that response times do not reveal which names exist. This one costs an
 * scrypt: for user names, whose passwords are all scrypt hashes.
 */
export async function verifyAgainstDummy (secret: string): Promise<false> {
  dummy ??= hashSecret(randomBytes(16).toString('hex'))
  await verifySecret(secret, await dummy)
  return false
}

const generatedDummy = hashGeneratedSecret(randomBytes(24).toString('hex'))
/**
 * The same for robot serials: an unknown serial costs what a robot with a
 * generated secret costs, one SHA-256 (after the same database look-up).
 * Generated secrets are the common case, and for them timing tells an
 * unknown serial from a known one in no way. The price: a robot whose hash
 * is scrypt (a secret an admin typed, or one stored before the sha256
 * scheme, until it is rotated) answers a wrong secret about 30 ms slower than
 * an unknown serial, so a prober can tell that such a serial exists; it
 * learns nothing about the secret, and guessing stays at scrypt's pace. The
 * other way round (an scrypt for every unknown serial) would reveal every
 * robot with a generated secret instead, and let anyone make the server
 * spend 30 ms of CPU per request with made-up serials.
 */
export async function verifyAgainstGeneratedDummy (secret: string): Promise<false> {
  await verifySecret(secret, generatedDummy)
  return false
}

/** A new random secret or token: `bytes` random bytes, hex. */
export function randomToken (bytes = 32): string {
  return randomBytes(bytes).toString('hex')
}
