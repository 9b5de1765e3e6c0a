// Placeholder: usernames unique without regard to case (owned by the log-in work). Filled in by the change that needs it.
import type { QueryInterface } from 'sequelize'

export const name = '012-usernames-case-insensitive'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  void qi
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  void qi
}
