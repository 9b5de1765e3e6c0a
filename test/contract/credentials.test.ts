import t from 'tap'
import { extractJwt } from '../../src/contract/credentials.js'

t.test('Authorization: Bearer <jwt>, any case of Bearer, spaces around', async (t) => {
  t.equal(extractJwt({ authorization: 'Bearer abc.def.ghi' }), 'abc.def.ghi')
  t.equal(extractJwt({ authorization: '  bearer   abc.def.ghi  ' }), 'abc.def.ghi')
  t.equal(extractJwt({ authorization: ['Bearer first', 'Bearer second'] }), 'first')
})

t.test("the original backend's authentication header, with or without Bearer", async (t) => {
  t.equal(extractJwt({ authentication: 'abc.def.ghi' }), 'abc.def.ghi')
  t.equal(extractJwt({ authentication: 'Bearer abc.def.ghi' }), 'abc.def.ghi')
  t.equal(extractJwt({ authorization: 'Bearer a', authentication: 'b' }), 'a', 'Authorization comes first')
})

t.test('anything else is no token', async (t) => {
  t.equal(extractJwt({}), null)
  t.equal(extractJwt({ authorization: '' }), null)
  t.equal(extractJwt({ authorization: 'abc.def.ghi' }), null, 'Authorization needs the Bearer scheme')
  t.equal(extractJwt({ authorization: 'Basic dXNlcjpwYXNz' }), null)
  t.equal(extractJwt({ authorization: 'Bearer two words' }), null)
  t.equal(extractJwt({ authentication: 'two words' }), null)
  t.equal(extractJwt({ authorization: 'Bearer' }), null)
})
