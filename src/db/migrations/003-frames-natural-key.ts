// Frames lose their surrogate `id`: (robot_id, frame_id) is unique already
// (docs/protocol.md §4.2, frame ids are idempotent per robot) and becomes the primary
// key, and the history index breaks ties of received_at by frame_id instead
// of id. Every stored frame then costs one index entry and one sequence step
// less: measured on PostgreSQL with the ingest statement, 100,000 rows in
// batches of 500, about a quarter of the database's CPU per row (noisy).
//
// History cursors made before this migration (received_at, id) no longer
// decode: a client that holds one gets a 400 and starts again from the
// first page.
import { Transaction, type QueryInterface } from 'sequelize'

export const name = '003-frames-natural-key'

const POSTGRES_UP = [
  'ALTER TABLE frames DROP CONSTRAINT frames_pkey',
  'ALTER TABLE frames ADD CONSTRAINT frames_pkey PRIMARY KEY USING INDEX frames_robot_frame_id',
  'DROP INDEX frames_robot_received',
  'CREATE INDEX frames_robot_received ON frames (robot_id, received_at, frame_id)',
  'ALTER TABLE frames DROP COLUMN id'
]

const POSTGRES_DOWN = [
  'ALTER TABLE frames ADD COLUMN id bigserial',
  'ALTER TABLE frames DROP CONSTRAINT frames_pkey',
  'CREATE UNIQUE INDEX frames_robot_frame_id ON frames (robot_id, frame_id)',
  'ALTER TABLE frames ADD CONSTRAINT frames_pkey PRIMARY KEY (id)',
  'DROP INDEX frames_robot_received',
  'CREATE INDEX frames_robot_received ON frames (robot_id, received_at, id)'
]

// SQLite cannot change a primary key in place: the table is copied.
const sqliteRebuild = (key: string, received: string): string[] => [
  `CREATE TABLE frames_new (${key}\`robot_id\` INTEGER NOT NULL REFERENCES \`robots\` (\`id\`) ON DELETE CASCADE, \`frame_id\` VARCHAR(64) NOT NULL, \`type\` SMALLINT NOT NULL, \`data\` JSON NOT NULL, \`recorded_at\` DATETIME, \`received_at\` DATETIME NOT NULL${key === '' ? ', PRIMARY KEY (`robot_id`, `frame_id`)' : ''})`,
  `INSERT INTO frames_new (${COLUMNS}) SELECT ${COLUMNS} FROM frames ORDER BY received_at, ${received === 'id' ? 'frame_id' : 'id'}`,
  'DROP TABLE frames',
  'ALTER TABLE frames_new RENAME TO frames',
  ...(key === '' ? [] : ['CREATE UNIQUE INDEX `frames_robot_frame_id` ON `frames` (`robot_id`, `frame_id`)']),
  `CREATE INDEX \`frames_robot_received\` ON \`frames\` (\`robot_id\`, \`received_at\`, \`${received}\`)`
]
const COLUMNS = 'robot_id, frame_id, type, data, recorded_at, received_at'

async function run (qi: QueryInterface, statements: string[]): Promise<void> {
  const sequelize = qi.sequelize
  await sequelize.transaction({ type: Transaction.TYPES.IMMEDIATE }, async (transaction) => {
    for (const sql of statements) await sequelize.query(sql, { transaction })
  })
}

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await run(qi, qi.sequelize.getDialect() === 'postgres' ? POSTGRES_UP : sqliteRebuild('', 'frame_id'))
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  // Restored ids follow the order the frames were received in on SQLite,
  // the order of the table's rows on PostgreSQL.
  await run(qi, qi.sequelize.getDialect() === 'postgres'
    ? POSTGRES_DOWN
    : sqliteRebuild('`id` INTEGER PRIMARY KEY AUTOINCREMENT, ', 'id'))
}
