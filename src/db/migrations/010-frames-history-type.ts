// Placeholder: the history index gains the frame type (owned by the history-reads work). Filled in by the change that needs it.
import type { QueryInterface } from 'sequelize'

export const name = '010-frames-history-type'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  void qi
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  void qi
}
