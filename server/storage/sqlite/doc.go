// Package sqlite is the embedded storage engine of myelind: SQLite through
// modernc.org/sqlite (no cgo), in WAL mode, with one writer connection fed by a
// queue that commits many requests in one transaction (group commit) and a pool
// of reader connections. Migrations are embedded, numbered
// (migrations/NNNN_name.sql) and applied in order; schema_migrations records
// them. Numbers 0001-0099 belong to the core, 0100-0199 to the E2EE tables.
//
// Use [Open] and pass the result to the HTTP layer as a storage.Store.
package sqlite
