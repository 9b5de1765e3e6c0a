// Payload vocabularies of the wire contract. Pure: no I/O.

/** CONTRACT §5: the states a user may command a robot into. */
export const ROBOT_COMMANDS = ['auto', 'idle', 'error', 'manual'] as const
export type RobotCommand = typeof ROBOT_COMMANDS[number]

/** CONTRACT §5: the life cycle of a command. */
export const COMMAND_STATUSES = ['pending', 'delivered', 'done', 'failed', 'expired'] as const
export type CommandStatus = typeof COMMAND_STATUSES[number]

/** CONTRACT §4: the frame types. */
export const FRAME_TYPES = { position: 1, geo: 2, hardware: 3 } as const
export type FrameType = typeof FRAME_TYPES[keyof typeof FRAME_TYPES]

/** The state of a robot that has never been commanded. */
export const INITIAL_ROBOT_STATE = 'idle'
