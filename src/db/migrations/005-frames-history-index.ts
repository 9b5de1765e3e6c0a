// On PostgreSQL, the index that serves a robot's history (newest first,
// services/frames.ts) keys on (robot_id, received_at) instead of (robot_id,
// received_at, frame_id). Every stored frame adds an entry to it, and the
// frame id made each entry wider and each insertion dearer: measured with the
// ingest statement alone (batches of 300 rows sharing their received_at, two
// alternating rounds), PostgreSQL's CPU per frame 14.8/12.4 µs with the frame
// id, 8.9/8.9 µs without, and 488 against 450 bytes of WAL per frame. Frames
// of one batch share their received_at, so entries repeat, and B-tree
// deduplication (PostgreSQL 13+) stores them as one key with a list of rows:
// 4.3 MB against 11.5 MB for 135,000 frames.
//
// A page of history still reads only what it returns: the index scan bounds
// received_at, and the frames of equal received_at are put in frame id order
// by an incremental sort of that group alone (EXPLAIN: Index Scan Backward
// on frames_robot_received_at, Incremental Sort, Presorted Key: received_at).
//
// SQLite keeps the three-column index: its writes are not bound by the index.
import type { QueryInterface } from 'sequelize'

export const name = '005-frames-history-index'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  if (qi.sequelize.getDialect() !== 'postgres') return
  await qi.sequelize.transaction(async (transaction) => {
    await qi.sequelize.query('CREATE INDEX IF NOT EXISTS frames_robot_received_at ON frames (robot_id, received_at)', { transaction })
    await qi.sequelize.query('DROP INDEX IF EXISTS frames_robot_received', { transaction })
  })
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  if (qi.sequelize.getDialect() !== 'postgres') return
  await qi.sequelize.transaction(async (transaction) => {
    await qi.sequelize.query('CREATE INDEX IF NOT EXISTS frames_robot_received ON frames (robot_id, received_at, frame_id)', { transaction })
    await qi.sequelize.query('DROP INDEX IF EXISTS frames_robot_received_at', { transaction })
  })
}
