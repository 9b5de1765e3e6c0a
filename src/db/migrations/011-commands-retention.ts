// Placeholder: commands retention and release (owned by the commands work). Filled in by the change that needs it.
import type { QueryInterface } from 'sequelize'

export const name = '011-commands-retention'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  void qi
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  void qi
}
