// Secrets at rest: user passwords and robot secrets are stored only as scrypt
// hashes, compared in constant time. The parameters travel inside the hash,
// so they can be raised later without invalidating what is stored.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'

const N = 16384
const r = 8
const p = 1
const KEY_LENGTH = 32

/**
 * scrypt runs on libuv's thread pool (4 threads), which the SQLite driver
 * and file I/O share, and costs ~30 ms of CPU on one of the machine's cores:
 * unbounded, 32 concurrent bad log-ins took every thread and pushed the frame
 * acks' p50 from 3.8 ms to 578 ms. So at most SCRYPT_CONCURRENCY run at once,
 * and at most SCRYPT_QUEUE wait; beyond that a log-in is refused at once
 * (HashQueueFull: 503 UNITED_BUSY) rather than queued for seconds.
 */
const SCRYPT_CONCURRENCY = 1
const SCRYPT_QUEUE = 64
let hashing = 0
const waiting: Array<() => void> = []

export class HashQueueFull extends Error {
  override name = 'HashQueueFull'
  constructor () { super('too many log-ins are being checked right now') }
}

async function scrypt (secret: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  if (hashing >= SCRYPT_CONCURRENCY) {
    if (waiting.length >= SCRYPT_QUEUE) throw new HashQueueFull()
    await new Promise<void>((resolve) => { waiting.push(resolve) })
  } else {
    hashing++
  }
  try {
    return await new Promise((resolve, reject) => {
      scryptCb(secret, salt, keylen, options, (err, key) => { err ? reject(err) : resolve(key) })
    })
  } finally {
    const next = waiting.shift()
    if (next !== undefined) next() // the place passes on to the next in line
    else hashing--
  }
}

export async function hashSecret (secret: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await scrypt(secret, salt, KEY_LENGTH, { N, r, p })
  return ['scrypt', N, r, p, salt.toString('base64url'), key.toString('base64url')].join('$')
}

export async function verifySecret (secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$')
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false
  const [cost, blockSize, parallel] = parts.slice(1, 4).map(Number) as [number, number, number]
  const salt = Buffer.from(parts[4] as string, 'base64url')
  const expected = Buffer.from(parts[5] as string, 'base64url')
  const actual = await scrypt(secret, salt, expected.length, { N: cost, r: blockSize, p: parallel, maxmem: 256 * cost * blockSize })
  return timingSafeEqual(actual, expected)
}

let dummy: Promise<string> | undefined
/**
 * Spend the same time as a real check when the user or robot does not exist,
 * so that response times do not reveal which names exist.
 */
export async function verifyAgainstDummy (secret: string): Promise<false> {
  dummy ??= hashSecret(randomBytes(16).toString('hex'))
  await verifySecret(secret, await dummy)
  return false
}

/** A new random secret or token: `bytes` random bytes, hex. */
export function randomToken (bytes = 32): string {
  return randomBytes(bytes).toString('hex')
}
