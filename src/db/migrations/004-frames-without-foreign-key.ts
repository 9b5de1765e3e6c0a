// On PostgreSQL, frames lose their foreign key to robots. The key checked
// each stored frame on its own, a lookup and a lock of the robot's row per
// row: measured with the ingest statement (batches of 255 rows, 12
// alternating rounds), ~6 of PostgreSQL's ~28 µs per frame.
//
// What the key guaranteed still holds, per batch instead of per row:
// - the frame writer locks each robot of a batch once (`FOR KEY SHARE`, the
//   lock the key's check took for every row) and stores only the frames of
//   robots it found (services/frame-writer.ts);
// - deleting a robot deletes its frames after the robot, in the same
//   transaction (services/robots.ts): a batch that holds the lock commits
//   first and its frames are deleted with the others; a batch that comes
//   later waits, finds no robot and stores none.
//
// SQLite keeps its key: it is checked in the process, cheaply, and SQLite's
// frame writer never runs beside a deletion.
import type { QueryInterface } from 'sequelize'

export const name = '004-frames-without-foreign-key'

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  if (qi.sequelize.getDialect() !== 'postgres') return
  // Named by PostgreSQL when 001 created the table: frames_robot_id_fkey.
  await qi.sequelize.query('ALTER TABLE frames DROP CONSTRAINT IF EXISTS frames_robot_id_fkey')
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  if (qi.sequelize.getDialect() !== 'postgres') return
  await qi.sequelize.transaction(async (transaction) => {
    // Frames whose robot is gone could only be left by writes that bypassed United.
    await qi.sequelize.query('DELETE FROM frames f WHERE NOT EXISTS (SELECT 1 FROM robots r WHERE r.id = f.robot_id)', { transaction })
    await qi.sequelize.query('ALTER TABLE frames ADD CONSTRAINT frames_robot_id_fkey FOREIGN KEY (robot_id) REFERENCES robots (id) ON DELETE CASCADE', { transaction })
  })
}
