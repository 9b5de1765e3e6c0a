// What the server prints when it starts or cannot: every case of the banner's
// database line and createsuperuser hint, and of a listener that cannot bind
// its port (the real processes are in start.test.ts).
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { describeDatabase, listenFailure, maskDatabaseUrl, startBanner } from '../../src/start-messages.js'

const ROOT = '/srv/united'

function bindError (code: string, port: number, address = '127.0.0.1'): NodeJS.ErrnoException {
  return Object.assign(new Error(`listen ${code}: ${address}:${port}`), { code, syscall: 'listen', address, port })
}

const config = (env: Record<string, string> = {}) => loadConfig({ JWT_SECRET: 'x'.repeat(32), ...env })

t.test('a PostgreSQL URL is shown with its password and password-like parameters masked', async (t) => {
  t.equal(maskDatabaseUrl('postgres://united:s3cr3t@db.example:5432/united'), 'postgres://united:***@db.example:5432/united')
  t.equal(maskDatabaseUrl('postgresql://u:p%40ss@h/d?sslmode=require&password=other'), 'postgresql://u:***@h/d?sslmode=require&password=***')
  t.equal(maskDatabaseUrl('postgres://postgres@127.0.0.1:5432/postgres'), null, 'no secret: nothing to mask')
  t.equal(maskDatabaseUrl('postgres://u:p#w@h/d'), 'postgres://***@h/d', 'not a URL the parser reads: everything before the host')
})

t.test('the database line and the createsuperuser prefix, per database', async (t) => {
  t.same(describeDatabase('sqlite:./data/united.sqlite', ROOT, ROOT), { label: `SQLite file ${join(ROOT, 'data/united.sqlite')}`, managePrefix: '', secretHidden: false }, 'the default file, started from the package root: npm run manage reaches it as it is')
  t.same(describeDatabase('sqlite:./data/united.sqlite', '/tmp/elsewhere', ROOT), { label: 'SQLite file /tmp/elsewhere/data/united.sqlite', managePrefix: 'DATABASE_URL=sqlite:/tmp/elsewhere/data/united.sqlite ', secretHidden: false }, 'started elsewhere: the absolute file')
  t.equal(describeDatabase('sqlite:///var/lib/my db.sqlite', ROOT, ROOT).managePrefix, "DATABASE_URL='sqlite:/var/lib/my db.sqlite' ", 'quoted for the shell')
  t.same(describeDatabase('sqlite::memory:', ROOT, ROOT), { label: 'SQLite in memory (gone when this process ends)', managePrefix: null, secretHidden: false })
  t.same(describeDatabase('postgres://postgres@127.0.0.1:5432/united', ROOT, ROOT), { label: 'PostgreSQL postgres://postgres@127.0.0.1:5432/united', managePrefix: 'DATABASE_URL=postgres://postgres@127.0.0.1:5432/united ', secretHidden: false }, 'no password: the URL as it is')
  t.same(describeDatabase('postgres://united:s3cr3t@db:5432/united', ROOT, ROOT), { label: 'PostgreSQL postgres://united:***@db:5432/united', managePrefix: "DATABASE_URL='postgres://united:<password>@db:5432/united' ", secretHidden: true }, 'a password: a placeholder, never the secret')
})

t.test('the banner: the admin URL first; the createsuperuser command only while there is no admin', async (t) => {
  const input = { base: 'http://127.0.0.1:8000', mqttHost: '127.0.0.1', mqttPort: 1883, jwtSecretGenerated: false }
  const secret = startBanner({ ...input, database: describeDatabase('postgres://united:s3cr3t@db:5432/united', ROOT, ROOT), hasStaff: false })
  t.match(secret, /^\nUnited is running\n {2}Admin {9}http:\/\/127\.0\.0\.1:8000\/admin\n/, 'the first URL is the admin')
  t.match(secret, /Database {6}PostgreSQL postgres:\/\/united:\*\*\*@db:5432\/united\n/)
  t.match(secret, "No admin yet. Create the first one with:\n  DATABASE_URL='postgres://united:<password>@db:5432/united' npm run manage -- createsuperuser --username admin\n  (with this server's DATABASE_URL: its password is not shown here)\nthen log in at http://127.0.0.1:8000/admin")
  t.notMatch(secret, /s3cr3t/)

  const staffed = startBanner({ ...input, database: describeDatabase('sqlite:./data/united.sqlite', ROOT, ROOT), hasStaff: true })
  t.notMatch(staffed, /createsuperuser|No admin yet/)
  t.match(staffed, /Admin {9}http:\/\/127\.0\.0\.1:8000\/admin/)

  const fresh = startBanner({ ...input, database: describeDatabase('sqlite:./data/united.sqlite', ROOT, ROOT), hasStaff: false })
  t.match(fresh, '\n  npm run manage -- createsuperuser --username admin\n', 'the default database: no prefix')
  const memory = startBanner({ ...input, database: describeDatabase('sqlite::memory:', ROOT, ROOT), hasStaff: false })
  t.match(memory, /cannot reach an in-memory database/)
  t.notMatch(memory, /createsuperuser/)
  t.match(startBanner({ ...input, database: describeDatabase('sqlite::memory:', ROOT, ROOT), hasStaff: null, tlsPort: 8883, jwtSecretGenerated: true }), /MQTT \(TLS\) {4}mqtts:\/\/127\.0\.0\.1:8883\n[^]*JWT_SECRET is not set/)
})

t.test('a port in use names the listener, its setting and an example, for each listener', async (t) => {
  const mqtt = listenFailure(bindError('EADDRINUSE', 1883), config(), 'broker', 'npm start')
  t.equal(mqtt, 'united: cannot start: MQTT over TCP cannot listen on 127.0.0.1:1883: another program already uses this port (on a developer machine often Mosquitto). Stop that program, or give United another port with MQTT_PORT, for example: MQTT_PORT=1884 npm start')
  t.match(listenFailure(bindError('EADDRINUSE', 8000), config(), 'http', 'npm start'), /HTTP \(REST API, admin pages, MQTT over WebSocket\) cannot listen on 127\.0\.0\.1:8000: .* with HTTP_PORT, for example: HTTP_PORT=8001 npm start$/)
  const tls = config({ MQTT_TLS_PORT: '8883', TLS_CERT_FILE: 'test/fixtures/tls/server.pem', TLS_KEY_FILE: 'test/fixtures/tls/server.key' })
  t.match(listenFailure(bindError('EADDRINUSE', 8883), tls, 'broker', 'npm start'), /MQTT over TLS cannot listen on 127\.0\.0\.1:8883: .* with MQTT_TLS_PORT, for example: MQTT_TLS_PORT=8884 npm start$/)
  t.match(listenFailure(bindError('EADDRINUSE', 1883), tls, 'broker', 'npm start'), /MQTT over TCP/, 'the plain port beside TLS')
  t.match(listenFailure(bindError('EADDRINUSE', 1884), config({ MQTT_PORT: '1884', HTTP_PORT: '9000' }), 'broker', 'node dist/src/server.js'), /for example: HTTP_PORT=9000 MQTT_PORT=1885 node dist\/src\/server\.js$/, 'keeps the other ports chosen, skips those in use')
})

t.test('two settings on one port, a privileged port and an address the machine lacks', async (t) => {
  t.match(listenFailure(bindError('EADDRINUSE', 1883), config({ HTTP_PORT: '1883' }), 'http', 'npm start'), /HTTP_PORT and MQTT_PORT are both 1883, and each listener needs its own port/)
  t.match(listenFailure(bindError('EACCES', 80), config({ HTTP_PORT: '80' }), 'http', 'npm start'), /cannot listen on 127\.0\.0\.1:80: this user may not listen on port 80 .* for example: HTTP_PORT=8000 npm start$/)
  t.match(listenFailure(bindError('EADDRNOTAVAIL', 1883, '10.9.9.9'), config({ HOST: '10.9.9.9' }), 'broker', 'npm start'), /MQTT over TCP cannot listen on 10\.9\.9\.9:1883: this machine has no address 10\.9\.9\.9\. Set HOST .* HOST=127\.0\.0\.1 npm start$/)
  t.equal(listenFailure(new Error('something else'), config(), 'broker', 'npm start'), null, 'other errors are not a port problem')
  const wrapped = new Error('plugin failed', { cause: bindError('EADDRINUSE', 1883) })
  t.match(listenFailure(wrapped, config(), 'broker', 'npm start'), /MQTT_PORT=1884/, 'found as the cause of a wrapping error')
})
