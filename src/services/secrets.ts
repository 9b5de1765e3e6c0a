// Secrets at rest: user passwords and robot secrets are stored only as scrypt
// hashes, compared in constant time. The parameters travel inside the hash,
// so they can be raised later without invalidating what is stored.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto'

const N = 16384
const r = 8
const p = 1
const KEY_LENGTH = 32

function scrypt (secret: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(secret, salt, keylen, options, (err, key) => { err ? reject(err) : resolve(key) })
  })
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
