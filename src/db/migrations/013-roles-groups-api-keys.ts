// Roles, groups, expiring grants and API keys (docs/protocol.md §13).
// A grant gains a role and an optional expiry; every grant made before this
// migration keeps what it allowed: `operator`. Groups of robots are granted
// to users like a robot is. API keys are stored as a SHA-256 hash with a
// unique lookup prefix, so that checking one is one indexed read.
import { DataTypes, type QueryInterface } from 'sequelize'

export const name = '013-roles-groups-api-keys'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.addColumn('robot_access', 'role', { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'operator' })
  await qi.addColumn('robot_access', 'expires_at', { type: DataTypes.DATE, allowNull: true })
  await qi.addIndex('robot_access', ['expires_at'], { name: 'robot_access_expires_at' })

  await qi.createTable('groups', {
    id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
    name: { type: DataTypes.STRING(100), allowNull: false, unique: true },
    created_at: { type: DataTypes.DATE, allowNull: false }
  })
  await qi.createTable('group_robots', {
    group_id: { type: DataTypes.INTEGER, primaryKey: true, references: { model: 'groups', key: 'id' }, onDelete: 'CASCADE' },
    robot_id: { type: DataTypes.INTEGER, primaryKey: true, references: { model: 'robots', key: 'id' }, onDelete: 'CASCADE' },
    created_at: { type: DataTypes.DATE, allowNull: false }
  })
  await qi.addIndex('group_robots', ['robot_id'], { name: 'group_robots_robot_id' })
  await qi.createTable('group_grants', {
    group_id: { type: DataTypes.INTEGER, primaryKey: true, references: { model: 'groups', key: 'id' }, onDelete: 'CASCADE' },
    user_id: { type: DataTypes.INTEGER, primaryKey: true, references: { model: 'users', key: 'id' }, onDelete: 'CASCADE' },
    role: { type: DataTypes.STRING(16), allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: true },
    created_at: { type: DataTypes.DATE, allowNull: false }
  })
  await qi.addIndex('group_grants', ['user_id'], { name: 'group_grants_user_id' })
  await qi.addIndex('group_grants', ['expires_at'], { name: 'group_grants_expires_at' })

  await qi.createTable('api_keys', {
    id: { type: DataTypes.UUID, primaryKey: true },
    // SET NULL, not CASCADE: a deleted user's keys stay known, as revoked, until the sweep forgets them
    user_id: { type: DataTypes.INTEGER, allowNull: true, references: { model: 'users', key: 'id' }, onDelete: 'SET NULL' },
    name: { type: DataTypes.STRING(100), allowNull: false },
    lookup: { type: DataTypes.STRING(16), allowNull: false, unique: true },
    key_hash: { type: DataTypes.STRING(64), allowNull: false },
    /** the user's token version when the key was made: a password change or a deactivation ends it */
    token_version: { type: DataTypes.INTEGER, allowNull: false },
    created_at: { type: DataTypes.DATE, allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: true },
    last_used_at: { type: DataTypes.DATE, allowNull: true },
    deleted_at: { type: DataTypes.DATE, allowNull: true }
  })
  await qi.addIndex('api_keys', ['user_id'], { name: 'api_keys_user_id' })
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.dropTable('api_keys')
  await qi.dropTable('group_grants')
  await qi.dropTable('group_robots')
  await qi.dropTable('groups')
  await qi.removeIndex('robot_access', 'robot_access_expires_at')
  await qi.removeColumn('robot_access', 'expires_at')
  await qi.removeColumn('robot_access', 'role')
}
