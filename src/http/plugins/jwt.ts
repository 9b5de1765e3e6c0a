// fp plugin 'jwt': @fastify/jwt signs and verifies user JWTs (HS256).
import fastifyJwt from '@fastify/jwt'
import fp from 'fastify-plugin'

export default fp(async (fastify, opts: { secret: string }) => {
  await fastify.register(fastifyJwt, { secret: opts.secret, sign: { algorithm: 'HS256' }, verify: { algorithms: ['HS256'] } })
}, { name: 'jwt' })
