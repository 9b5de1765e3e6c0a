// No way round the case-insensitive uniqueness of usernames by renaming: no
// path renames a user. The Management API refuses a `username` in a PATCH
// (400, the user unchanged), and the admin edit form ignores one: so `bob`
// can never become `ALICE` beside `alice`. (Creation is covered in
// test/http/usernames-case.test.ts.)
import t from 'tap'
import { staffBrowser } from './browser.js'
import { createStaff, createUser } from '../factory.js'
import { bearer, build } from '../helper.js'

t.test('a user cannot be renamed to another\'s name in another case, by the API or the admin form', async (t) => {
  const app = await build(t)
  const staff = await createStaff(app)
  await createUser(app, { username: 'alice' })
  const bob = await createUser(app, { username: 'bob' })

  for (const username of ['ALICE', 'Alice', 'carol']) {
    const res = await app.inject({ method: 'PATCH', url: `/admin/api/users/${bob.id}`, headers: bearer(staff.jwt), payload: { username } })
    t.equal(res.statusCode, 400, `API, ${username}: 400`)
    const withMore = await app.inject({ method: 'PATCH', url: `/admin/api/users/${bob.id}`, headers: bearer(staff.jwt), payload: { username, is_staff: false } })
    t.equal(withMore.statusCode, 400, `API, ${username} beside a valid field: 400`)
  }

  const browser = await staffBrowser(app, staff)
  await browser.get(`/admin/users/${bob.id}`)
  const res = await browser.post(`/admin/users/${bob.id}`, { username: 'ALICE', is_active: 'on' })
  t.equal(res.statusCode, 303, 'the form saves what it edits')
  t.same(await app.services.users.get(bob.id), { id: bob.id, username: 'bob', is_staff: false, is_active: true }, 'bob is still bob')
  const names = (await app.services.users.list()).items.map((u) => u.username)
  t.same(names.filter((n) => n.toLowerCase() === 'alice'), ['alice'], 'one alice')
})
