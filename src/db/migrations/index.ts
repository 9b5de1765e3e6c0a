// Every migration, in order. An explicit list instead of a glob, so the same
// code runs from src/ (tests) and dist/ (production) without path tricks.
import * as m001 from './001-initial.js'
import * as m002 from './002-admin-sessions.js'
import * as m003 from './003-frames-natural-key.js'
import * as m004 from './004-frames-without-foreign-key.js'
import * as m005 from './005-frames-history-index.js'
import * as m006 from './006-user-token-version.js'
import * as m007 from './007-robot-secret-grace.js'
import * as m008 from './008-queued-commands.js'
import * as m009 from './009-frame-rollups.js'
import * as m010 from './010-frames-history-type.js'
import * as m011 from './011-commands-retention.js'
import * as m012 from './012-usernames-case-insensitive.js'
import * as m013 from './013-roles-groups-api-keys.js'
import * as m014 from './014-robot-models.js'

export const migrations = [m001, m002, m003, m004, m005, m006, m007, m008, m009, m010, m011, m012, m013, m014]
