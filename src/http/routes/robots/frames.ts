// GET /robots/{uuid}/frames (docs/protocol.md §6.3): stored frames, newest first,
// keyset-paginated; GET /robots/{uuid}/frames/aggregate and /export (docs/protocol.md §6.4, §6.5),
// a few at once per user and per node (429 UNITED_BUSY with Retry-After),
// an aggregate refused before it runs when it would read too many frames
// (400 UNITED_RANGE_TOO_LARGE).
import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Errors, isError } from '../../../errors.js'
import { HISTORY_RETRY_AFTER } from '../../../services/history-limiter.js'
import { BearerSecurity, BusyResponse, errorResponses, PageSchema, RobotUuidParams } from '../../schemas/common.js'
import { AggregateQuery, AggregateSchema, ExportQuery, FrameQuery, FrameSchema } from '../../schemas/robots.js'

/**
 * A history read refused for want of a place (429 UNITED_BUSY) is answered
 * when a retry could succeed, Retry-After seconds later, not at once. A
 * client that honours Retry-After loses nothing; one that asks again the
 * moment it is refused (an abuser, a naive retry loop) is slowed to one
 * request a second per connection. Answered at once, such loops made
 * 6,600-19,000 refusals a second in the abuse bench, each a request parsed,
 * a JWT checked and an error sent: on two cores that alone took the fleet's
 * ack p99 past 50 ms. Waiting costs a timer and an idle socket, no CPU.
 */
async function refusedWhenRetryCan<T> (work: () => Promise<T>): Promise<T> {
  try {
    return await work()
  } catch (err) {
    if (isError(err, 'HISTORY_BUSY')) await new Promise((resolve) => { setTimeout(resolve, HISTORY_RETRY_AFTER * 1000) })
    throw err
  }
}

const routes: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get('/robots/:uuid/frames', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: "A robot's stored data frames, newest first by time received",
      security: BearerSecurity,
      params: RobotUuidParams,
      querystring: FrameQuery,
      response: { 200: PageSchema(FrameSchema), ...errorResponses(400, 401, 404) }
    }
  }, async (request) => {
    const { from, to, ...rest } = request.query
    return await fastify.services.frames.list(request.principal!, request.params.uuid.toLowerCase(), {
      ...rest,
      from: from === undefined ? undefined : new Date(from),
      to: to === undefined ? undefined : new Date(to)
    })
  })

  fastify.get('/robots/:uuid/frames/aggregate', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: "Min, max and average of a robot's stored frames per time bucket, oldest first (only buckets with frames)",
      security: BearerSecurity,
      params: RobotUuidParams,
      querystring: AggregateQuery,
      description: 'Counts against the history reads a user (`HISTORY_CONCURRENCY`) and a node (`HISTORY_NODE_CONCURRENCY`) may run at once: one more answers `429` `UNITED_BUSY` with `Retry-After`. ' +
        'A bucket that is a whole number of minutes is answered from per-minute rollups for every whole minute the rollups cover; an aggregate that would read more than `AGGREGATE_MAX_ROWS` stored frames ' +
        '(estimated from the rollups\' counts and a bounded count of the rest) answers `400` `UNITED_RANGE_TOO_LARGE` before it runs. ' +
        'Type 4 (telemetry, docs/protocol.md §14) aggregates the number and integer fields of the robot\'s current model (a value counts only where it is a JSON number: frames stored under an older version count for the fields the current model also declares as numbers); a robot without a model answers `404` `UNITED_NO_MODEL`.',
      response: { 200: AggregateSchema, ...errorResponses(400, 401, 404), 429: BusyResponse }
    }
  }, async (request) => {
    const { type, from, to, bucket } = request.query
    return await refusedWhenRetryCan(async () => await fastify.services.frames.aggregate(request.principal!, request.params.uuid.toLowerCase(), { type, bucket, from: new Date(from), to: new Date(to) }))
  })

  fastify.get('/robots/:uuid/frames/export', {
    onRequest: fastify.authenticate,
    schema: {
      tags: ['robots'],
      summary: "Every stored frame in the range, oldest first, streamed as NDJSON (one §6 item per line) or CSV (one type)",
      security: BearerSecurity,
      params: RobotUuidParams,
      querystring: ExportQuery,
      description: 'Holds one of the history reads a user (`HISTORY_CONCURRENCY`) and a node (`HISTORY_NODE_CONCURRENCY`) may run at once for as long as it streams; one more answers `429` `UNITED_BUSY` with `Retry-After`. ' +
        'A response that takes nothing for 30 s (its client stopped reading) is ended, and its place given back.',
      response: {
        200: {
          description: 'NDJSON lines or CSV rows, streamed as an attachment',
          content: {
            'application/x-ndjson': { schema: Type.String({ description: 'one history item (as GET /robots/{uuid}/frames gives) per line' }) },
            'text/csv': { schema: Type.String({ description: "frame_id,type,recorded_at,received_at, then the numeric fields of the type (type 4: every telemetry field of the robot's current model in declaration order, numbers as they are, booleans true/false, strings as text cells, empty when the frame lacks it; 404 UNITED_NO_MODEL for a robot without a model). Cells holding , ; \" tab or a line break are quoted; a text cell that starts like a formula (= + - @ tab CR LF, their full-width forms, or spaces then = + - @) or with ' gets one leading ' (drop it to read the text back); numbers are written as they are" }) }
          }
        },
        ...errorResponses(400, 401, 404),
        429: BusyResponse
      }
    }
  }, async (request, reply) => {
    const { type, from, to } = request.query
    const format = request.query.format ?? 'ndjson'
    if (format === 'csv' && type === undefined) throw new Errors.BAD_REQUEST('format=csv needs a type: its columns are the fields of one frame type')
    const uuid = request.params.uuid.toLowerCase()
    let stream: Readable | null = null
    const pieces = await refusedWhenRetryCan(async () => await fastify.services.frames.export(request.principal!, uuid, {
      type,
      format,
      from: from === undefined ? undefined : new Date(from),
      to: to === undefined ? undefined : new Date(to)
    }, {
      // Its reader stopped reading: the place is given back already; end the
      // response too, so that its socket and buffered piece go. A reset, not
      // a close: a FIN would wait behind the unread bytes in the socket's
      // send buffer (megabytes, kept by the kernel until it gives up), and
      // a client that reads nothing would never see it.
      onStall: () => {
        request.log.info({ robot: uuid }, 'frame export ended: its client read nothing for too long')
        const socket = reply.raw.socket
        if (socket !== null && typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy()
        stream?.destroy()
        reply.raw.destroy()
      }
    }))
    const name = `robot-${uuid}-frames${type === undefined ? '' : `-type${type}`}.${format === 'csv' ? 'csv' : 'ndjson'}`
    void reply
      .type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8')
      .header('content-disposition', `attachment; filename="${name}"`)
      .header('cache-control', 'no-store')
    // Readable.from pulls the next piece only when the response has taken the last one.
    // Destroyed (the client went away, or it stalled), it returns the pieces, which gives their place back.
    stream = Readable.from(pieces, { objectMode: false, highWaterMark: 1 })
    stream.on('error', (err) => { request.log.warn({ err }, 'frame export failed mid-stream') })
    return await reply.send(stream as unknown as string) // a stream: Fastify pipes it, no serializer runs
  })
}

export default routes
