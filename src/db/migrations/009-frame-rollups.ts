// Per-minute rollups of stored frames (docs/protocol.md §6.4 aggregates at scale,
// services/rollups.ts). One row per robot, minute (epoch seconds / 60) and
// frame type: the frame count, and for each numeric field of the type, in
// NUMERIC_FIELDS' order (slots 0-3), how many frames had it, its min, max and
// sum. Keyed (robot_id, minute, type) so that a robot's minutes are one index
// range. `frame_rollup_state` holds the one row that says which minutes the
// rollups cover: [rolled_from, rolled_until), NULL until the first roll.
import type { QueryInterface } from 'sequelize'

export const name = '009-frame-rollups'

export const SLOTS = 4

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  const slots = Array.from({ length: SLOTS }, (_, i) => `c${i} INTEGER NOT NULL, lo${i} DOUBLE PRECISION, hi${i} DOUBLE PRECISION, s${i} DOUBLE PRECISION`).join(', ')
  await qi.sequelize.query(`CREATE TABLE frame_rollups (robot_id INTEGER NOT NULL, minute BIGINT NOT NULL, type INTEGER NOT NULL, n INTEGER NOT NULL, ${slots}, PRIMARY KEY (robot_id, minute, type))`)
  await qi.sequelize.query('CREATE TABLE frame_rollup_state (id INTEGER PRIMARY KEY, rolled_from BIGINT, rolled_until BIGINT)')
  await qi.sequelize.query('INSERT INTO frame_rollup_state (id, rolled_from, rolled_until) VALUES (1, NULL, NULL)')
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.sequelize.query('DROP TABLE frame_rollup_state')
  await qi.sequelize.query('DROP TABLE frame_rollups')
}
