// Payload vocabularies of the wire contract. Pure: no I/O.

/** docs/protocol.md §5: the states a user may command a robot into. */
export const ROBOT_COMMANDS = ['auto', 'idle', 'error', 'manual'] as const
export type RobotCommand = typeof ROBOT_COMMANDS[number]

/** docs/protocol.md §5.2: the life cycle of a command. */
export const COMMAND_STATUSES = ['queued', 'pending', 'delivered', 'done', 'failed', 'expired', 'cancelled'] as const
export type CommandStatus = typeof COMMAND_STATUSES[number]

/** docs/protocol.md §5.3: the longest a command may wait for its robot, in seconds (7 days). */
export const MAX_COMMAND_TTL = 604800

/** docs/protocol.md §4: the frame types. */
export const FRAME_TYPES = { position: 1, geo: 2, hardware: 3, telemetry: 4 } as const
export type FrameType = typeof FRAME_TYPES[keyof typeof FRAME_TYPES]

/** The state of a robot that has never been commanded. */
export const INITIAL_ROBOT_STATE = 'idle'
