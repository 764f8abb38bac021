// Package migrations is seatledger's schema history: numbered goose SQL
// files, embedded so that the server binary carries its own schema and
// applies it at start-up (internal/store's Migrate).
//
// A file never changes once it is on main; fix forward with a new one.
// Every file has an Up and a Down section, and a test in internal/store
// runs them all up, down to zero and up again.
package migrations

import "embed"

// FS holds the migration files, NNNNN_name.sql, at its root.
//
//go:embed *.sql
var FS embed.FS
