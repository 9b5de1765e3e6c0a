// Sessions end with the credential (docs/protocol.md §2.4): every user JWT carries the
// user's token version (`ver`), and a password change or a deactivation moves
// the version on, so that every JWT signed before it is refused, and a
// reactivation does not bring them back.
import { DataTypes, type QueryInterface } from 'sequelize'

export const name = '006-user-token-version'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.addColumn('users', 'token_version', { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 })
}

// Down drops the column with ALTER TABLE on both databases (SQLite ≥ 3.35),
// not with Sequelize's SQLite removeColumn, which copies and drops the table
// and would take the rows that reference users (grants, sessions) with it.
export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.sequelize.query('ALTER TABLE users DROP COLUMN token_version')
}
