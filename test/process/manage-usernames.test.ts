// `npm run manage -- createsuperuser` refuses a username equal to another
// ignoring case, as every other way of creating a user does.
import t from 'tap'
import { MANAGE, run, tempDir } from './spawn.js'

t.test('createsuperuser: Root, then root, is refused as already existing', async (t) => {
  const cwd = tempDir(t)
  const env = { DATABASE_URL: 'sqlite:./data/united.sqlite' }
  const created = await run(MANAGE, ['createsuperuser', '--username', 'Root', '--password', 'root-password'], { cwd, env })
  t.equal(created.code, 0, created.stderr)
  for (const name of ['root', 'ROOT']) {
    const again = await run(MANAGE, ['createsuperuser', '--username', name, '--password', 'root-password'], { cwd, env })
    t.equal(again.code, 1, `${name}: exit 1`)
    t.match(again.stderr, /already exists/, `${name}: already exists`)
  }
})
