// Secret rotation with overlap (docs/protocol.md §2.4): a robot keeps at most one
// previous secret hash, accepted at obtain_token until its expiry. Both
// columns are null when there is none. The same file for SQLite and
// PostgreSQL; down drops the columns with ALTER TABLE on both (SQLite ≥ 3.35),
// not with Sequelize's SQLite removeColumn, which copies and drops the table
// and would take the rows that reference robots with it.
import { DataTypes, type QueryInterface } from 'sequelize'

export const name = '007-robot-secret-grace'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.addColumn('robots', 'previous_secret_hash', { type: DataTypes.STRING(255), allowNull: true })
  await qi.addColumn('robots', 'previous_secret_expires_at', { type: DataTypes.DATE, allowNull: true })
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.sequelize.query('ALTER TABLE robots DROP COLUMN previous_secret_expires_at')
  await qi.sequelize.query('ALTER TABLE robots DROP COLUMN previous_secret_hash')
}
