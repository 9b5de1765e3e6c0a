// GET /robots, GET /robots/{uuid} (docs/protocol.md §6.1): the robots a user can access.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { BearerSecurity, errorResponses, PageQuery, PageSchema, RobotUuidParams } from '../../schemas/common.js'
import { ModelSchema } from '../../schemas/models.js'
import { RobotSchema } from '../../schemas/robots.js'
import commands from './commands.js'
import frames from './frames.js'
import grants from './grants.js'
import token from './token.js'

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  const { robots, access, models } = fastify.services

  fastify.get('/robots', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: 'The robots you can access (staff: every robot)',
      security: BearerSecurity,
      querystring: PageQuery,
      response: { 200: PageSchema(RobotSchema), ...errorResponses(400, 401) }
    }
  }, async (request) => {
    const me = request.principal!
    const page = await robots.list({ ...request.query, visibleTo: me.isStaff ? undefined : me.id })
    if (me.isStaff) return { ...page, items: page.items.map((r) => ({ ...r, role: 'staff' as const })) }
    const roles = await access.rolesOn(me.id, page.items.map((r) => r.uuid))
    // a role that ended between the two reads: the robot is left out
    return { ...page, items: page.items.flatMap((r) => { const role = roles.get(r.uuid); return role === undefined ? [] : [{ ...r, role }] }) }
  })

  fastify.get('/robots/:uuid', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: 'One robot',
      security: BearerSecurity,
      params: RobotUuidParams,
      response: { 200: RobotSchema, ...errorResponses(400, 401, 404) }
    }
  }, async (request) => {
    const robot = await access.robotFor(request.principal!, request.params.uuid.toLowerCase())
    return { ...await robots.get(robot.uuid), role: robot.role }
  })

  fastify.get('/robots/:uuid/model', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: "The robot's model version, whole (viewer)",
      description: 'What the robot reports (telemetry fields) and the commands it takes with their parameter schemas. 404 `UNITED_NO_MODEL` when it has none.',
      security: BearerSecurity,
      params: RobotUuidParams,
      response: { 200: ModelSchema, ...errorResponses(400, 401, 404) }
    }
  }, async (request) => {
    const robot = await access.robotFor(request.principal!, request.params.uuid.toLowerCase())
    return await models.ofRobot(robot.id)
  })

  await fastify.register(token)
  await fastify.register(commands)
  await fastify.register(frames)
  await fastify.register(grants)
}

export default routes
