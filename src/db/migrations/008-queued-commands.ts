// Commands that wait for the robot (docs/protocol.md §5.3). `expires_at`: when a
// queued command expires (null for the others). `sent_at`: when it was
// published (it became pending); COMMAND_TIMEOUT counts from then, not from
// created_at, so a command that waited in the queue gets its whole timeout
// once it is sent. Existing rows were sent when they were created.
// `commands_robot_queued` finds a robot's queue oldest first.
import { DataTypes, type QueryInterface } from 'sequelize'

export const name = '008-queued-commands'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.addColumn('commands', 'expires_at', { type: DataTypes.DATE, allowNull: true })
  await qi.addColumn('commands', 'sent_at', { type: DataTypes.DATE, allowNull: true })
  await qi.sequelize.query("UPDATE commands SET sent_at = created_at WHERE status <> 'queued'")
  await qi.addIndex('commands', ['robot_id', 'status', 'created_at', 'id'], { name: 'commands_robot_queued' })
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.removeIndex('commands', 'commands_robot_queued')
  // queued and cancelled commands have no meaning before this migration
  await qi.sequelize.query("UPDATE commands SET status = 'expired' WHERE status IN ('queued', 'cancelled')")
  await qi.sequelize.query('ALTER TABLE commands DROP COLUMN sent_at')
  await qi.sequelize.query('ALTER TABLE commands DROP COLUMN expires_at')
}
