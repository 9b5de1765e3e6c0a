// The MQTT side of the contract as an AsyncAPI 3.0 document (docs/protocol.md §12),
// built from the same schemas the broker validates with (frames.ts,
// messages.ts), the topic list (topics.ts) and the access table (acl.ts).
// Nothing here is written twice by hand. Pure: no I/O.
//
// Robot models (docs/protocol.md §14) add, per live version, a message on
// `data` (its type-4 frame, whose `data` is telemetryDataSchema: what the
// broker's compiled validator checks) and one on `commands` (its commands
// and their parameter schemas, as the command endpoint checks them). The
// caller passes the versions; the document is built per request.
import type { TSchema } from 'typebox'
import { ACL } from './acl.js'
import { FRAME_SCHEMA } from './frames.js'
import { COMMAND_ACK_SCHEMA, COMMAND_SCHEMA, FRAME_ACK_SCHEMA, PRESENCE_SCHEMA, STATS_SCHEMA } from './messages.js'
import { telemetryDataSchema, type ModelDefinition } from './models.js'
import { FRAME_TYPES } from './payloads.js'
import { CHANNELS, type Channel } from './topics.js'

export interface AsyncApiOptions {
  /** United's version (package.json). */
  version: string
  /** The host name clients reach this server by (the server variables' default). */
  host: string
  mqttPort: number
  httpPort: number
  tlsPort?: number
  maxFrameBytes: number
  /** The absolute URL of the REST API's documentation (an AsyncAPI link must be absolute). */
  restDocsUrl: string
  /** Every live model version (services.models.allVersions()); none: the fixed document. */
  models?: readonly AsyncApiModel[]
}

/** A model version as the document needs it. */
export interface AsyncApiModel {
  name: string
  version: number
  description?: string | null
  telemetry: ModelDefinition['telemetry']
  commands: ModelDefinition['commands']
}

/**
 * The message names of a model version: distinct for every name and version
 * (a model name has no `_v<digits>` ending that could be mistaken for a
 * version: the last one is the version).
 */
export const telemetryMessageName = (model: { name: string, version: number }): string => `telemetry_${model.name}_v${model.version}`
export const commandsMessageName = (model: { name: string, version: number }): string => `commands_${model.name}_v${model.version}`

/** The channel ids of the document, one per topic of docs/protocol.md §3. */
const CHANNEL_IDS: Record<Channel, string> = {
  data: 'data',
  ack: 'ack',
  commands: 'commands',
  'commands/ack': 'commandAck',
  stats: 'stats',
  presence: 'presence'
}

interface ChannelInfo { message: string, schema: TSchema, title: string, description: string, qos: 0 | 1, retain: boolean }

const CHANNEL_INFO = (maxFrameBytes: number): Record<Channel, ChannelInfo> => ({
  data: {
    message: 'frame',
    schema: FRAME_SCHEMA,
    title: 'Data frame',
    description: `A position (type 1), geo (2) or hardware (3) frame, or for a robot with a model a telemetry frame (type 4: the message telemetry_<model>_v<version> of its model version), at most ${maxFrameBytes} bytes (MAX_FRAME_BYTES; a larger one is acked as an error with id null, unparsed). The schema is the one the broker validates with: a frame it accepts, the broker stores; a frame it refuses, the broker acks with an error naming the field.`,
    qos: 1,
    retain: false
  },
  ack: {
    message: 'frameAck',
    schema: FRAME_ACK_SCHEMA,
    title: 'Frame acknowledgement',
    description: 'Exactly one per frame, with its id: ok only once the frame is committed to the database.',
    qos: 1,
    retain: false
  },
  commands: {
    message: 'command',
    schema: COMMAND_SCHEMA,
    title: 'Command',
    description: 'A state change issued over REST (POST /robots/robot/command), published at once, or, when it was queued with a ttl for a robot that was not listening, as soon as the robot subscribes here (its queue oldest first). Its status becomes delivered on the robot\'s PUBACK.',
    qos: 1,
    retain: false
  },
  'commands/ack': {
    message: 'commandAck',
    schema: COMMAND_ACK_SCHEMA,
    title: 'Command acknowledgement',
    description: 'The robot\'s answer to a command: ok makes the command done and the robot\'s state the command, error makes it failed. One that does not match this schema is ignored (and logged).',
    qos: 1,
    retain: false
  },
  stats: {
    message: 'stats',
    schema: STATS_SCHEMA,
    title: 'Live statistics',
    description: 'The last known value of each field, published (retained) after each stored batch of the robot\'s frames.',
    qos: 0,
    retain: true
  },
  presence: {
    message: 'presence',
    schema: PRESENCE_SCHEMA,
    title: 'Presence',
    description: 'Retained, republished on every change, online: false included.',
    qos: 0,
    retain: true
  }
})

/** Who does what on a channel, from the access table, as the client sees it. */
function operationsOf (channel: Channel): Array<{ id: string, action: 'send' | 'receive', who: 'robot' | 'user', summary: string }> {
  const rule = ACL[channel]
  const id = CHANNEL_IDS[channel]
  const cap = id.charAt(0).toUpperCase() + id.slice(1)
  const ops: Array<{ id: string, action: 'send' | 'receive', who: 'robot' | 'user', summary: string }> = []
  if (rule.robotPublishes) ops.push({ id: `robotSends${cap}`, action: 'send', who: 'robot', summary: `The robot publishes to its own ${channel} topic.` })
  if (rule.robotSubscribes) ops.push({ id: `robotReceives${cap}`, action: 'receive', who: 'robot', summary: `The robot subscribes to its own ${channel} topic (no wildcards).` })
  if (rule.usersSubscribe) ops.push({ id: `userReceives${cap}`, action: 'receive', who: 'user', summary: `A user holding any role on the robot (viewer, operator or manager, directly or through a group, unexpired), or staff, subscribes; + in the robot position delivers only the robots the user may see, checked per message, so that a grant revoked, expired or taken away with a group stops delivery within a second.` })
  return ops
}

const ref = (path: string): { $ref: string } => ({ $ref: path })
/** A plain JSON copy: TypeBox marks its schemas with symbols, which are no part of the document. */
const plain = (schema: unknown): Record<string, unknown> => JSON.parse(JSON.stringify(schema)) as Record<string, unknown>
const propertiesOf = (schema: unknown): Record<string, unknown> => (plain(schema) as { properties: Record<string, unknown> }).properties

/** A frame's id, as every frame type has it (the first alternative's: they are all the same). */
const FRAME_ID = (plain(FRAME_SCHEMA) as { anyOf: Array<{ properties: { id: unknown } }> }).anyOf[0]?.properties.id

/** A model version's type-4 frame, whole: the envelope of every frame around the model's data schema. */
function telemetryFrameSchema (model: AsyncApiModel): Record<string, unknown> {
  const label = `${model.name} v${model.version}`
  return {
    type: 'object',
    title: `${label} telemetry frame`,
    properties: {
      id: FRAME_ID,
      type: { const: FRAME_TYPES.telemetry, description: 'telemetry' },
      data: { ...telemetryDataSchema({ name: model.name, telemetry: model.telemetry, commands: model.commands }), description: `datetime and at least one field of model ${label}; a field it does not declare is refused` }
    },
    required: ['id', 'type', 'data'],
    additionalProperties: false
  }
}

/**
 * A model version's commands as the robot receives them: one alternative per
 * command, `params` always present (the parameter schema as declared, `{}`
 * for a command that takes none).
 */
function modelCommandsSchema (model: AsyncApiModel): Record<string, unknown> {
  const fixed = propertiesOf(COMMAND_SCHEMA)
  return {
    title: `${model.name} v${model.version} commands`,
    oneOf: Object.entries(model.commands).map(([name, decl]) => ({
      type: 'object',
      title: name,
      ...(decl.description === undefined && decl.timeout === undefined
        ? {}
        : { description: [decl.description, decl.timeout === undefined ? undefined : `expires ${decl.timeout} s after it was sent without an acknowledgement (instead of COMMAND_TIMEOUT)`].filter((s) => s !== undefined).join('; ') }),
      properties: {
        id: fixed.id,
        command: { const: name },
        issued_by: fixed.issued_by,
        issued_at: fixed.issued_at,
        params: decl.params === undefined ? { type: 'object', maxProperties: 0, description: 'takes no parameters: always {}' } : plain(decl.params)
      },
      required: ['id', 'command', 'issued_by', 'issued_at', 'params'],
      additionalProperties: false
    }))
  }
}

export function asyncApiDocument (opts: AsyncApiOptions): Record<string, unknown> {
  const info = CHANNEL_INFO(opts.maxFrameBytes)
  const server = (port: number, protocol: string, description: string, extra: Record<string, unknown> = {}): Record<string, unknown> => ({
    host: '{host}:{port}',
    protocol,
    ...extra,
    description,
    variables: { host: { default: opts.host }, port: { default: String(port) } },
    security: [ref('#/components/securitySchemes/robot'), ref('#/components/securitySchemes/user')],
    bindings: { mqtt: { cleanSession: true, keepAlive: 60, bindingVersion: '0.2.0' } }
  })
  const servers: Record<string, unknown> = {
    mqtt: server(opts.mqttPort, 'mqtt', 'MQTT 3.1.1 (and 3.1) over TCP (MQTT_PORT). MQTT 5 gets CONNACK 1.', { protocolVersion: '3.1.1' }),
    websocket: {
      ...server(opts.httpPort, 'ws', 'MQTT 3.1.1 over WebSocket on the HTTP port (subprotocol mqtt). The upgrade may carry the credential instead of the password: x-token (robots) or authentication (users). Behind a TLS proxy, wss.', { pathname: '/mqtt' }),
      security: [ref('#/components/securitySchemes/robot'), ref('#/components/securitySchemes/user'), ref('#/components/securitySchemes/robotHeader'), ref('#/components/securitySchemes/userHeader')]
    }
  }
  if (opts.tlsPort !== undefined) servers.tls = server(opts.tlsPort, 'secure-mqtt', 'MQTT 3.1.1 over TLS (MQTT_TLS_PORT).', { protocolVersion: '3.1.1' })

  const channels: Record<string, unknown> = {}
  const operations: Record<string, unknown> = {}
  const messages: Record<string, unknown> = {}
  const schemas: Record<string, unknown> = {}
  for (const channel of CHANNELS) {
    const id = CHANNEL_IDS[channel]
    const c = info[channel]
    schemas[c.message] = plain(c.schema)
    messages[c.message] = { name: c.message, title: c.title, contentType: 'application/json', payload: ref(`#/components/schemas/${c.message}`) }
    channels[id] = {
      address: `robots/{uuid}/${channel}`,
      title: c.title,
      description: c.description,
      parameters: { uuid: ref('#/components/parameters/uuid') },
      messages: { [c.message]: ref(`#/components/messages/${c.message}`) }
    }
    for (const op of operationsOf(channel)) {
      operations[op.id] = {
        action: op.action,
        channel: ref(`#/channels/${id}`),
        summary: op.summary,
        messages: [ref(`#/channels/${id}/messages/${c.message}`)],
        security: [ref(`#/components/securitySchemes/${op.who}`), ...(op.who === 'robot' ? [ref('#/components/securitySchemes/robotHeader')] : [ref('#/components/securitySchemes/userHeader')])],
        tags: [{ name: op.who }],
        bindings: { mqtt: { qos: c.qos, retain: c.retain, bindingVersion: '0.2.0' } }
      }
    }
  }
  // A robot's model fields are top-level keys of its statistics (docs/protocol.md §14.2).
  schemas.stats = { ...schemas.stats as Record<string, unknown>, additionalProperties: { type: ['number', 'string', 'boolean'], description: 'the last value of a telemetry field of the robot\'s model (docs/protocol.md §14.2); fields a new model version does not declare are dropped' } }
  // Robot models: each live version's type-4 frame and commands, distinct per name and version.
  for (const model of opts.models ?? []) {
    const label = `${model.name} v${model.version}`
    const about = model.description === undefined || model.description === null || model.description === '' ? '' : ` (${model.description})`
    const add = (channel: 'data' | 'commands', operation: string, name: string, schema: Record<string, unknown>, title: string, summary: string): void => {
      schemas[name] = schema
      messages[name] = { name, title, summary, contentType: 'application/json', payload: ref(`#/components/schemas/${name}`) }
      ;((channels[channel] as Record<string, unknown>).messages as Record<string, unknown>)[name] = ref(`#/components/messages/${name}`)
      ;((operations[operation] as Record<string, unknown>).messages as unknown[]).push(ref(`#/channels/${channel}/messages/${name}`))
    }
    add('data', 'robotSendsData', telemetryMessageName(model), telemetryFrameSchema(model), `Telemetry frame, ${label}`, `A type-4 frame of a robot of model ${label}${about}: checked against this version's fields; an error ack names the field.`)
    if (Object.keys(model.commands).length > 0) {
      add('commands', 'robotReceivesCommands', commandsMessageName(model), modelCommandsSchema(model), `Commands of ${label}`, `The commands of model ${label}${about}, with their parameters (checked against the schema before the command is stored or published). The acknowledgement may carry a result (commandAck).`)
    }
  }

  // The answers, as AsyncAPI replies: a frame's ack, a command's acknowledgement.
  ;(operations.robotSendsData as Record<string, unknown>).reply = { channel: ref('#/channels/ack'), messages: [ref('#/channels/ack/messages/frameAck')] }
  ;(operations.robotReceivesCommands as Record<string, unknown>).reply = { channel: ref('#/channels/commandAck'), messages: [ref('#/channels/commandAck/messages/commandAck')] }

  return {
    asyncapi: '3.0.0',
    id: 'urn:united:mqtt',
    info: {
      title: 'United MQTT API',
      version: opts.version,
      description: 'The MQTT side of United, the robot fleet backend: the topics of every robot, who may publish and subscribe where, and every payload. Operations are written from the client\'s side: send means a robot publishes, receive means a robot or a user subscribes. The broker enforces the access rules per message: any other publish closes the connection, any other subscription gets SUBACK 0x80, and $SYS/ is staff-only. The REST API is described by the OpenAPI document at /docs/json.',
      license: { name: 'MIT' },
      externalDocs: { description: 'The REST API (OpenAPI)', url: opts.restDocsUrl },
      tags: [{ name: 'robot', description: 'a robot: username = its uuid, password = an access token from POST /robots/robot/obtain_token' }, { name: 'user', description: 'a user or staff: username = the username, password = an access JWT from POST /users/obtain_token/ or one of the user\'s API keys (uk_…)' }]
    },
    defaultContentType: 'application/json',
    servers,
    channels,
    operations,
    components: {
      schemas,
      messages,
      parameters: { uuid: { description: 'A robot\'s uuid, lower-case and hyphenated. Users may subscribe with + here.' } },
      securitySchemes: {
        robot: { type: 'userPassword', description: 'CONNECT with username = the robot\'s uuid and password = its access token (POST /robots/robot/obtain_token, valid ROBOT_TOKEN_TTL seconds). A bad or expired token: CONNACK 4; a token voided (robot disabled, deleted or rotated) less than ROBOT_TOKEN_TTL ago: CONNACK 5; a token that could not be checked (the database, or Redis in cluster mode, cannot answer): CONNACK 3, try again. A robot that already holds MAX_CONNECTIONS_PER_ROBOT (10) open connections: CONNACK 5, unless the CONNECT reuses one of their client ids (it takes that connection over).' },
        user: { type: 'userPassword', description: 'CONNECT with username = the username and password = an access JWT (POST /users/obtain_token/) or an API key (POST /users/me/api_keys). A bad or expired JWT, a refresh JWT or a wrong key: CONNACK 4; a key deleted, expired, or ended by a password change: CONNACK 5, and its open connections close within a second; an inactive user, or a JWT revoked since (user deleted, password changed, deactivated): CONNACK 5; a JWT that could not be checked (the database cannot answer): CONNACK 3, try again. A user who already holds MAX_CONNECTIONS_PER_USER (100) open connections: CONNACK 5, unless the CONNECT reuses one of their client ids. Usernames match without regard to case.' },
        robotHeader: { type: 'httpApiKey', in: 'header', name: 'x-token', description: 'WebSocket only: the robot\'s access token on the upgrade request, instead of the password.' },
        userHeader: { type: 'httpApiKey', in: 'header', name: 'authentication', description: 'WebSocket only: the access JWT (with or without Bearer) on the upgrade request, instead of the password.' }
      }
    }
  }
}
