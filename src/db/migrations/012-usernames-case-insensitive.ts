// Usernames are unique without regard to case, and log-in matches them the
// same way: a unique index on lower(username), on both databases (SQLite and
// PostgreSQL both index expressions). Log-in, the admin form, MQTT CONNECT
// and the grant form look names up with the same lower() (services/users.ts),
// so the look-up and the index never disagree; the stored spelling is what
// answers, JWTs and the audit log show. Usernames are ASCII (letters, digits
// and _ . @ + -, checked wherever a user is created), where both databases'
// lower() agree; a name stored before that rule with other letters folds as
// its database folds it (PostgreSQL's lower() folds accented capitals,
// SQLite's only A-Z).
//
// A database made before this migration may hold names that differ only by
// case (`alice` and `Alice`). Refusing to start until an admin renames one
// would stop the whole fleet at an upgrade for two accounts (and United has
// no rename: an admin would have to edit the table by hand); renaming or
// deleting one here would lock a person out, or hand one person's name to
// another. So they are kept, and told apart the only way left:
//
// - the oldest of each such group (lowest id) holds its name in the index
//   like any user; the later ones are named in the index by their id (the
//   second key is `id` for them, 0 for everyone else), so the index accepts
//   them, and still refuses any NEW name that equals the group's ignoring
//   case (its key is taken by the oldest). Ids are never reused (SQLite
//   AUTOINCREMENT, a PostgreSQL sequence), so the list stays exact;
// - log-in matches such a name by its exact spelling only: `alice` and
//   `Alice` each log in as before, `ALICE` is nobody (a wrong log-in, after
//   the same password hash as any);
// - creating a user also looks the name up without regard to case, so a new
//   name that equals a kept one is refused even once the oldest of its group
//   is deleted;
// - the migration names them in a process warning
//   (UNITED_USERNAME_CASE_DUPLICATES): deleting all but one of each group
//   makes the survivor match without regard to case again.
//
// On a database without such names (every new one) the index is plain
// lower(username). The old unique index on the exact name stays: it costs
// nothing more and keeps the models' declaration true.
import { QueryTypes, type QueryInterface } from 'sequelize'

export const name = '012-usernames-case-insensitive'

const INDEX = 'users_username_lower'

interface Row { id: number | string, username: string, folded: string }

export async function up ({ context: qi }: { context: QueryInterface }): Promise<void> {
  // Grouped by the database's lower(), not JavaScript's: it is the one the
  // index applies. Oldest first within each group.
  const rows = await qi.sequelize.query<Row>(
    `SELECT id, username, lower(username) AS folded FROM users
      WHERE lower(username) IN (SELECT lower(username) FROM users GROUP BY lower(username) HAVING COUNT(*) > 1)
      ORDER BY lower(username), id`,
    { type: QueryTypes.SELECT })
  const groups = new Map<string, Row[]>()
  for (const row of rows) groups.set(row.folded, [...(groups.get(row.folded) ?? []), row])
  const later = [...groups.values()].flatMap((group) => group.slice(1)).map((row) => Number(row.id))
  if (!later.every((id) => Number.isSafeInteger(id))) throw new Error('012-usernames-case-insensitive: a user id is not an integer')
  const byId = later.length === 0 ? '' : `, (CASE WHEN id IN (${later.join(', ')}) THEN id ELSE 0 END)`
  await qi.sequelize.query(`CREATE UNIQUE INDEX IF NOT EXISTS ${INDEX} ON users (lower(username)${byId})`)
  if (later.length > 0) {
    const named = [...groups.values()].map((group) => group.map((row) => `${JSON.stringify(row.username)} (id ${String(row.id)})`).join(' and '))
    process.emitWarning(
      `usernames that differ only by case were kept: ${named.join('; ')}. ` +
      'Each logs in by its exact spelling only; delete all but one of a group and the one left matches without regard to case again.',
      { code: 'UNITED_USERNAME_CASE_DUPLICATES' })
  }
}

export async function down ({ context: qi }: { context: QueryInterface }): Promise<void> {
  await qi.sequelize.query(`DROP INDEX IF EXISTS ${INDEX}`)
}
