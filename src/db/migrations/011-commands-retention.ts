// Finished commands are deleted after COMMAND_RETENTION_DAYS, oldest first,
// in short pieces (services/commands.ts, removeFinishedOlderThan): the index
// on created_at finds the oldest without reading the table, and also serves
// the dashboard's "commands of the last 24 hours", whose cost then follows a
// day's commands, not every command ever sent. The existing indexes serve
// the rest of the queue rules: `commands_robot_queued` (robot_id, status,
// created_at, id) counts a robot's queue and its unacknowledged commands and
// finds its oldest queued ones, `commands_status` counts the open commands
// for /metrics.
import type { QueryInterface } from 'sequelize'

export const name = '011-commands-retention'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.addIndex('commands', ['created_at'], { name: 'commands_created_at' })
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.removeIndex('commands', 'commands_created_at')
}
