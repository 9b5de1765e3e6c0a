// Robot models (docs/protocol.md §14): versioned, immutable declarations of
// what a kind of robot reports (telemetry fields) and accepts (commands with
// parameter schemas). A version is never changed; a deleted one keeps its row
// (deleted_at) so that its number is never given out again and every node's
// compiled copy of (name, version) stays true. The definition is JSON text,
// not JSONB: the declaration order of the fields is the CSV column order.
//
// Robots name their model by (model_name, model_version); commands gain their
// parameters, the robot's result and their own timeout; model command names
// are up to 64 characters. frame_field_rollups holds, per robot, minute and
// telemetry field, what frame_rollups holds per fixed slot.
import { DataTypes, type QueryInterface } from 'sequelize'

export const name = '014-robot-models'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.createTable('robot_models', {
    id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
    name: { type: DataTypes.STRING(64), allowNull: false },
    version: { type: DataTypes.INTEGER, allowNull: false },
    description: { type: DataTypes.TEXT, allowNull: true },
    definition: { type: DataTypes.TEXT, allowNull: false },
    created_at: { type: DataTypes.DATE, allowNull: false },
    deleted_at: { type: DataTypes.DATE, allowNull: true }
  })
  await qi.addIndex('robot_models', ['name', 'version'], { name: 'robot_models_name_version', unique: true })

  await qi.addColumn('robots', 'model_name', { type: DataTypes.STRING(64), allowNull: true })
  await qi.addColumn('robots', 'model_version', { type: DataTypes.INTEGER, allowNull: true })
  await qi.addIndex('robots', ['model_name', 'model_version'], { name: 'robots_model' })

  await qi.addColumn('commands', 'params', { type: DataTypes.TEXT, allowNull: true })
  await qi.addColumn('commands', 'result', { type: DataTypes.TEXT, allowNull: true })
  await qi.addColumn('commands', 'timeout_seconds', { type: DataTypes.INTEGER, allowNull: true })
  // SQLite does not enforce VARCHAR lengths; PostgreSQL does.
  if (qi.sequelize.getDialect() === 'postgres') {
    await qi.sequelize.query('ALTER TABLE commands ALTER COLUMN command TYPE VARCHAR(64)')
  }

  await qi.sequelize.query('CREATE TABLE frame_field_rollups (robot_id INTEGER NOT NULL, minute BIGINT NOT NULL, field VARCHAR(64) NOT NULL, c INTEGER NOT NULL, lo DOUBLE PRECISION, hi DOUBLE PRECISION, s DOUBLE PRECISION, PRIMARY KEY (robot_id, minute, field))')
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.sequelize.query('DROP TABLE frame_field_rollups')
  if (qi.sequelize.getDialect() === 'postgres') {
    await qi.sequelize.query("DELETE FROM commands WHERE length(command) > 16")
    await qi.sequelize.query('ALTER TABLE commands ALTER COLUMN command TYPE VARCHAR(16)')
  }
  // DROP COLUMN in place (SQLite 3.35+ too): sequelize's removeColumn would
  // rebuild SQLite's robots table, which other tables' foreign keys name.
  for (const [table, column] of [['commands', 'timeout_seconds'], ['commands', 'result'], ['commands', 'params'], ['robots', 'model_version'], ['robots', 'model_name']]) {
    if (column === 'model_version') await qi.removeIndex('robots', 'robots_model')
    await qi.sequelize.query(`ALTER TABLE ${table as string} DROP COLUMN ${column as string}`)
  }
  await qi.dropTable('robot_models')
}
