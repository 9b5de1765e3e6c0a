// Secrets at rest (src/services/secrets.ts): the two schemes a stored hash
// names, sha256 for generated secrets and scrypt for typed ones; each checks
// its own secret only, and a stored hash that cannot be read is a mismatch,
// never an exception. No database: pure functions.
import t from 'tap'
import { hashGeneratedSecret, hashingFor, hashSecret, randomToken, verifyAgainstDummy, verifyAgainstGeneratedDummy, verifySecret } from '../../src/services/secrets.js'

t.test('a generated secret hashes to sha256$<43 base64url characters>, the same each time, and verifies', async (t) => {
  const secret = randomToken(24)
  const stored = hashGeneratedSecret(secret)
  t.match(stored, /^sha256\$[A-Za-z0-9_-]{43}$/)
  t.equal(hashGeneratedSecret(secret), stored, 'no salt: a random secret is its own')
  t.notOk(stored.includes(secret), 'the secret is not in its hash')
  t.equal(await verifySecret(secret, stored), true)
  t.equal(await verifySecret(randomToken(24), stored), false, 'another secret does not match')
  t.equal(await verifySecret(secret.toUpperCase(), stored), false, 'case matters')
  t.equal(await verifySecret(secret.slice(0, -1), stored), false, 'a prefix does not match')
  t.equal(await verifySecret('', stored), false)
})

t.test('a typed secret hashes to scrypt$N$r$p$salt$key, salted, and verifies', async (t) => {
  const stored = await hashSecret('weak-pass-1')
  t.match(stored, /^scrypt\$16384\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/)
  t.not(await hashSecret('weak-pass-1'), stored, 'salted: the same secret hashes differently each time')
  t.equal(await verifySecret('weak-pass-1', stored), true)
  t.equal(await verifySecret('weak-pass-2', stored), false)
  t.equal(await verifySecret('', stored), false)
})

t.test('each scheme answers for its own hash only: a hash of one secret under one scheme does not verify as the other', async (t) => {
  const secret = randomToken(24)
  const sha = hashGeneratedSecret(secret)
  const legacy = await hashSecret(secret)
  t.equal(await verifySecret(secret, legacy), true, 'an scrypt hash of a generated secret (stored before sha256) still works')
  t.equal(await verifySecret(sha, sha), false, 'the hash itself is not the secret')
  t.equal(await verifySecret(secret, sha.replace(/^sha256/, 'scrypt')), false, 'a sha256 digest under the scrypt name is malformed')
})

t.test('malformed stored hashes never throw: every one is a mismatch', async (t) => {
  const secret = randomToken(24)
  const good = await hashSecret(secret)
  const [, , , , salt, key] = good.split('$') as string[]
  const digest = hashGeneratedSecret(secret).split('$')[1] as string
  const malformed = [
    '',
    '$',
    'x',
    secret,
    'plain$text',
    'md5$abc',
    'SHA256$' + digest,
    'sha256$',
    'sha256$' + digest + '$extra',
    'sha256$' + digest.slice(0, 20),
    'sha256$' + digest + 'AAAA',
    'sha256$!!!!',
    'scrypt$',
    'scrypt$16384$8$1$' + salt,
    'scrypt$16384$8$1$' + salt + '$' + key + '$extra',
    'scrypt$abc$8$1$' + salt + '$' + key,
    'scrypt$16383$8$1$' + salt + '$' + key,
    'scrypt$1$8$1$' + salt + '$' + key,
    'scrypt$0$8$1$' + salt + '$' + key,
    'scrypt$-16384$8$1$' + salt + '$' + key,
    'scrypt$1e4$8$1$' + salt + '$' + key,
    'scrypt$1073741824$8$1$' + salt + '$' + key,
    'scrypt$16384$0$1$' + salt + '$' + key,
    'scrypt$16384$8$0$' + salt + '$' + key,
    'scrypt$16384$1000000$1$' + salt + '$' + key,
    'scrypt$16384$8$1000$' + salt + '$' + key,
    'scrypt$16384$8$1$$' + key,
    'scrypt$16384$8$1$' + salt + '$',
    'scrypt$16384$8$1$' + salt + '$AAAA',
    'scrypt$16384$8$1$' + salt + '$' + key.repeat(3),
    'scrypt$16384$8$1$' + salt + '$' + key.slice(0, 20)
  ]
  for (const stored of malformed) {
    t.equal(await verifySecret(secret, stored), false, JSON.stringify(stored.slice(0, 60)))
  }
  t.equal(await verifySecret(secret, good), true, 'the well-formed one still verifies')
})

t.test('the dummies of unknown names and serials always answer false', async (t) => {
  t.equal(await verifyAgainstDummy('anything'), false)
  t.equal(await verifyAgainstDummy(''), false)
  t.equal(await verifyAgainstGeneratedDummy(randomToken(24)), false)
  t.equal(await verifyAgainstGeneratedDummy(''), false)
})

t.test('more scrypt checks than the queue holds are refused at once as UNITED_BUSY with Retry-After, the rest answered; the lines of addresses take turns', async (t) => {
  const stored = await hashSecret('a-typed-password')
  // One address: one checking, 8 waiting in its line.
  const one = await Promise.allSettled(Array.from({ length: 20 }, async () => await hashingFor('192.0.2.1', async () => await verifySecret('wrong-password', stored))))
  t.equal(one.filter((r) => r.status === 'fulfilled').length, 9, 'from one address: one checking and 8 waiting are answered')
  t.ok(one.every((r) => r.status === 'rejected' || r.value === false), 'as wrong')
  t.match((one.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason, { code: 'UNITED_BUSY', statusCode: 503, retryAfter: 1 })

  // Twelve addresses of 8 each fill the 64 places; then each newcomer takes the place of the last of the longest line.
  const order: string[] = []
  const from = (address: string): Promise<boolean> => hashingFor(address, async () => { const ok = await verifySecret('wrong-password', stored); order.push(address); return ok })
  const floods = Array.from({ length: 12 }, (_, i) => Array.from({ length: 8 }, async () => await from(`198.51.100.${i}`))).flat()
  const late = Array.from({ length: 5 }, async (_, i) => await from(`203.0.113.${i}`))
  const results = await Promise.allSettled([...floods, ...late])
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 65, 'one checking and 64 waiting are answered in all')
  t.ok(results.slice(-5).every((r) => r.status === 'fulfilled'), 'every late address got a place')
  const firstLate = order.findIndex((a) => a.startsWith('203.0.113.'))
  t.ok(firstLate >= 0 && firstLate <= 13, `the late addresses were served within one turn of the lines (first at ${firstLate})`)
  t.equal(await verifySecret('a-typed-password', stored), true, 'afterwards a check runs again')
})

t.test('hashing outside a log-in (staff creating users, the command line) has no per-address depth: twenty at once are all answered', async (t) => {
  const hashed = await Promise.all(Array.from({ length: 20 }, async (_, i) => await hashSecret(`password-number-${i}`)))
  t.equal(new Set(hashed).size, 20, 'twenty hashes, none refused')
  t.equal(await verifySecret('password-number-7', hashed[7] as string), true)
})
