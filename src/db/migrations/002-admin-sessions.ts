// Admin sessions (docs/admin.md): one row per logged-in browser. The primary key
// is the SHA-256 of the cookie's random token, so a copy of the table does
// not let anyone in. Rows go with their user.
import { DataTypes, type QueryInterface } from 'sequelize'

export const name = '002-admin-sessions'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.createTable('admin_sessions', {
    id: { type: DataTypes.STRING(64), primaryKey: true },
    user_id: { type: DataTypes.INTEGER, allowNull: false, references: { model: 'users', key: 'id' }, onDelete: 'CASCADE' },
    ip: { type: DataTypes.STRING(64), allowNull: true },
    created_at: { type: DataTypes.DATE, allowNull: false },
    expires_at: { type: DataTypes.DATE, allowNull: false }
  })
  await qi.addIndex('admin_sessions', ['user_id'], { name: 'admin_sessions_user' })
  await qi.addIndex('admin_sessions', ['expires_at'], { name: 'admin_sessions_expires' })
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.dropTable('admin_sessions')
}
