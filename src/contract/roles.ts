// The roles a grant gives on a robot (docs/protocol.md §13.1), lowest first.
// Staff are above every role and hold none.

export const ROLES = ['viewer', 'operator', 'manager'] as const
export type Role = typeof ROLES[number]

const RANK: Record<Role, number> = { viewer: 1, operator: 2, manager: 3 }

export function isRole (value: unknown): value is Role {
  return typeof value === 'string' && (ROLES as readonly string[]).includes(value)
}

/** True when `role` allows what `need` allows. */
export function atLeast (role: Role | null | undefined, need: Role): boolean {
  return role !== null && role !== undefined && RANK[role] >= RANK[need]
}

/** The higher of two roles (null: none). */
export function higher (a: Role | null, b: Role | null): Role | null {
  if (a === null) return b
  if (b === null) return a
  return RANK[a] >= RANK[b] ? a : b
}

/** The roles that allow what `need` allows, for an SQL `IN` list. */
export function rolesFrom (need: Role): Role[] {
  return ROLES.filter((r) => RANK[r] >= RANK[need])
}

/** What each action needs (docs/protocol.md §13.1). */
export const NEEDS = {
  see: 'viewer',
  command: 'operator',
  manageGrants: 'manager'
} as const satisfies Record<string, Role>
