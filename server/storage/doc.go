// Package storage defines the homeserver's persistence interfaces, each sized to
// its consumer ([Accounts], [AccountData], [Filters], [Rooms], [Receipts],
// [Aliases], [Txns]), and [Store], their union, which an engine implements.
//
// Engines live in sub-packages (storage/sqlite is the embedded default) and are
// imported only by cmd/myelind and tests. Every write method returns only after
// the change is durable, so a handler may acknowledge the client as soon as it
// returns.
//
// Stream positions: every observable change (room event, account data, receipt,
// to-device message, device-list change) gets a position from one monotonically
// increasing counter. /sync tokens carry that position.
// See https://spec.matrix.org/v1.16/client-server-api/#syncing.
package storage
