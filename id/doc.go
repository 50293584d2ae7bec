// Package id holds typed Matrix identifiers: [UserID], [DeviceID], [RoomID],
// [EventID], [RoomAlias] and [ServerName].
//
// Every type is valid by construction: the only ways to get a non-zero value
// are the Parse* functions and UnmarshalText, which apply the grammar of the
// specification's identifier appendix
// (https://spec.matrix.org/v1.16/appendices/#identifier-grammar), including
// the 255-byte length limits. The zero value of each type is the empty,
// invalid identifier; IsZero reports it.
//
// User IDs are parsed strictly by [ParseUserID] (localpart of a-z, 0-9 and
// "-._=/+"). User IDs in the historical, more tolerant grammar (any
// non-surrogate code point except ":" and NUL, including the empty
// localpart) are accepted only by the explicit [ParseUserIDLenient];
// [UserID.Compliant] tells the two apart afterwards.
//
// Server names follow the grammar in
// https://spec.matrix.org/v1.16/appendices/#server-name: a DNS name, a
// dotted-quad IPv4 literal (each octet 0-255) or a bracketed IPv6 literal,
// optionally followed by ":port". Server names are case-sensitive and are
// never normalised.
//
// The package is pure: it does no I/O and never resolves names.
package id
