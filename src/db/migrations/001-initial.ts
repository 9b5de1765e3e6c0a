// The initial schema. The same file runs on SQLite and PostgreSQL; the only
// differences are the width of the frame/audit keys and JSON vs JSONB.
import { DataTypes, type QueryInterface } from 'sequelize'

export const name = '001-initial'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  const pg = qi.sequelize.getDialect() === 'postgres'
  // SQLite allows AUTOINCREMENT only on INTEGER PRIMARY KEY (which is 64-bit there).
  const bigId = pg ? DataTypes.BIGINT : DataTypes.INTEGER
  const json = pg ? DataTypes.JSONB : DataTypes.JSON
  const timestamps = {
    created_at: { type: DataTypes.DATE, allowNull: false },
    updated_at: { type: DataTypes.DATE, allowNull: false }
  }

  await qi.createTable('users', {
    id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
    username: { type: DataTypes.STRING(150), allowNull: false, unique: true },
    password_hash: { type: DataTypes.STRING(255), allowNull: false },
    is_staff: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
    is_active: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
    ...timestamps
  })

  await qi.createTable('robots', {
    id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
    uuid: { type: DataTypes.UUID, allowNull: false, unique: true },
    serial: { type: DataTypes.STRING(128), allowNull: false, unique: true },
    name: { type: DataTypes.STRING(200), allowNull: false, defaultValue: '' },
    secret_hash: { type: DataTypes.STRING(255), allowNull: false },
    enabled: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: true },
    state: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'idle' },
    last_seen_at: { type: DataTypes.DATE, allowNull: true },
    data_connected: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
    command_connected: { type: DataTypes.BOOLEAN, allowNull: false, defaultValue: false },
    ...timestamps
  })

  await qi.createTable('robot_access', {
    user_id: { type: DataTypes.INTEGER, primaryKey: true, references: { model: 'users', key: 'id' }, onDelete: 'CASCADE' },
    robot_id: { type: DataTypes.INTEGER, primaryKey: true, references: { model: 'robots', key: 'id' }, onDelete: 'CASCADE' },
    created_at: { type: DataTypes.DATE, allowNull: false }
  })
  await qi.addIndex('robot_access', ['robot_id'], { name: 'robot_access_robot_id' })

  await qi.createTable('frames', {
    id: { type: bigId, primaryKey: true, autoIncrement: true },
    robot_id: { type: DataTypes.INTEGER, allowNull: false, references: { model: 'robots', key: 'id' }, onDelete: 'CASCADE' },
    frame_id: { type: DataTypes.STRING(64), allowNull: false },
    type: { type: DataTypes.SMALLINT, allowNull: false },
    data: { type: json, allowNull: false },
    recorded_at: { type: DataTypes.DATE, allowNull: true },
    received_at: { type: DataTypes.DATE, allowNull: false }
  })
  // docs/protocol.md §4.2: frame ids are idempotent per robot.
  await qi.addIndex('frames', ['robot_id', 'frame_id'], { unique: true, name: 'frames_robot_frame_id' })
  // Keyset pagination, newest first (docs/protocol.md §6.1).
  await qi.addIndex('frames', ['robot_id', 'received_at', 'id'], { name: 'frames_robot_received' })

  await qi.createTable('commands', {
    id: { type: DataTypes.UUID, primaryKey: true },
    robot_id: { type: DataTypes.INTEGER, allowNull: false, references: { model: 'robots', key: 'id' }, onDelete: 'CASCADE' },
    command: { type: DataTypes.STRING(16), allowNull: false },
    status: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'pending' },
    issued_by: { type: DataTypes.STRING(150), allowNull: false },
    issued_by_id: { type: DataTypes.INTEGER, allowNull: true, references: { model: 'users', key: 'id' }, onDelete: 'SET NULL' },
    message: { type: DataTypes.STRING(500), allowNull: true },
    delivered_at: { type: DataTypes.DATE, allowNull: true },
    acked_at: { type: DataTypes.DATE, allowNull: true },
    ...timestamps
  })
  await qi.addIndex('commands', ['robot_id', 'created_at', 'id'], { name: 'commands_robot_created' })
  await qi.addIndex('commands', ['status'], { name: 'commands_status' })

  await qi.createTable('audit_events', {
    id: { type: bigId, primaryKey: true, autoIncrement: true },
    at: { type: DataTypes.DATE, allowNull: false },
    actor_id: { type: DataTypes.INTEGER, allowNull: true },
    actor: { type: DataTypes.STRING(150), allowNull: true },
    action: { type: DataTypes.STRING(64), allowNull: false },
    robot_uuid: { type: DataTypes.UUID, allowNull: true },
    target_user_id: { type: DataTypes.INTEGER, allowNull: true },
    details: { type: json, allowNull: true },
    ip: { type: DataTypes.STRING(64), allowNull: true }
  })
  await qi.addIndex('audit_events', ['at', 'id'], { name: 'audit_events_at' })
  await qi.addIndex('audit_events', ['robot_uuid'], { name: 'audit_events_robot' })
  await qi.addIndex('audit_events', ['actor_id'], { name: 'audit_events_actor' })
  await qi.addIndex('audit_events', ['action'], { name: 'audit_events_action' })
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  for (const table of ['audit_events', 'commands', 'frames', 'robot_access', 'robots', 'users']) {
    await qi.dropTable(table)
  }
}
