// CSV cells that no spreadsheet splits or runs as a formula, whatever its
// locale's list separator (`,` or `;`) or its way of reading tabs. The one
// place CSV cells are written (today: the frame export).
//
// Two kinds of cell:
// - text (anything a user or robot chose: frame ids, serials, usernames…,
//   and everything else that is not a number column): a cell whose first
//   character is `=`, `+`, `-`, `@`, tab, CR or LF (OWASP's list), their
//   full-width forms (＝＋－＠, which some spreadsheets fold to ASCII),
//   whitespace then one of `=+-@`, or `'` gets one leading `'`. So every text
//   cell that starts with `'` had one added, and a reader gets the original
//   back by dropping one leading `'` from a text cell that has it.
// - number (columns we fill with numbers from validated JSON): written as
//   they are when they are numbers in JSON's grammar (`-1.5`, `2e-7`: a
//   spreadsheet reads a number, never a formula); anything else in such a
//   column is written as text (defence in depth: never expected).
// Then any cell holding `,`, `;`, `"`, tab, CR or LF is quoted, its quotes
// doubled (RFC 4180): a `;` inside a quoted cell is no split for a `;`
// locale, so no part of the cell can start a formula of its own.

const FORMULA_START = /^(?:[=+\-@\t\r\n'\uFF1D\uFF0B\uFF0D\uFF20]|\s+[=+\-@\uFF1D\uFF0B\uFF0D\uFF20])/
const NEEDS_QUOTES = /[",;\t\r\n]/
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/

/** A text cell: neutralised (leading `'`) when a spreadsheet could take it for a formula, quoted when it could be split. */
export function csvText (value: string): string {
  const safe = FORMULA_START.test(value) ? `'${value}` : value
  return NEEDS_QUOTES.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe
}

/** A number cell: as it is when it is a number (negative ones too), empty for null, else as text. */
export function csvNumber (value: unknown): string {
  if (value === null || value === undefined) return ''
  const s = String(value)
  return JSON_NUMBER.test(s) ? s : csvText(s)
}

/**
 * A telemetry cell (type 4, docs/protocol.md §14) from the stored value's JSON
 * text: a string is a text cell, true and false are written as they are, a
 * number as a number cell; absent (or null) is empty. Written by the value's
 * own JSON type, not by what the current model declares: a frame stored
 * under an older model version keeps its data as stored.
 */
export function csvTelemetry (json: unknown): string {
  if (json === null || json === undefined) return ''
  const s = String(json)
  if (s === 'null') return ''
  if (s === 'true' || s === 'false') return s
  if (s.startsWith('"')) {
    let text: unknown
    try { text = JSON.parse(s) } catch { text = s }
    return csvText(String(text))
  }
  return csvNumber(s)
}
