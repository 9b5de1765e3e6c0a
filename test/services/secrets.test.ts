// Secrets at rest (src/services/secrets.ts): the two schemes a stored hash
// names, sha256 for generated secrets and scrypt for typed ones; each checks
// its own secret only, and a stored hash that cannot be read is a mismatch,
// never an exception. No database: pure functions.
import t from 'tap'
import { hashGeneratedSecret, hashSecret, randomToken, verifyAgainstDummy, verifyAgainstGeneratedDummy, verifySecret } from '../../src/services/secrets.js'

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

t.test('more scrypt checks than the queue holds are refused at once as UNITED_BUSY with Retry-After, the rest answered', async (t) => {
  const stored = await hashSecret('a-typed-password')
  const results = await Promise.allSettled(Array.from({ length: 100 }, async () => await verifySecret('wrong-password', stored)))
  const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected')
  const answered = results.filter((r) => r.status === 'fulfilled')
  t.equal(answered.length, 65, 'one checking and 64 waiting are answered')
  t.ok(answered.every((r) => r.status === 'fulfilled' && r.value === false), 'as wrong')
  t.equal(refused.length, 35, 'the others are refused')
  t.match(refused[0]?.reason, { code: 'UNITED_BUSY', statusCode: 503, retryAfter: 1 })
  t.equal(await verifySecret('a-typed-password', stored), true, 'afterwards a check runs again')
})
