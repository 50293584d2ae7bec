// Package rooms is the pure event logic of the myelind homeserver for room
// versions 10 and 11 (https://spec.matrix.org/v1.16/rooms/v11/): building,
// hashing, signing and parsing PDUs, event IDs, the redaction algorithm,
// the authorisation rules, room state, history visibility and the client
// event format. It does no I/O; the clock is an argument.
//
// # Creating events
//
// The server serialises event creation per room, so the room's event graph
// is linear and its current state is a fold of [State.Set] over the
// accepted events. To add an event:
//
//	ev, err := rooms.Build(rooms.Proto{Type: ..., StateKey: ..., Sender: ..., Content: ...},
//		rooms.Position{Version: v, RoomID: id, State: cur, PrevEvents: []string{last.ID()},
//			PrevDepth: last.Depth(), Now: now}, signer)
//	// errors: ErrForbidden (403 M_FORBIDDEN), ErrEventTooLarge (413 M_TOO_LARGE),
//	// ErrInvalidEvent (400 M_BAD_JSON), ErrUnsupportedRoomVersion
//	store(ev.ID(), ev.JSON()); cur.Set(ev)
//
// [Build] selects the auth events, computes the content hash
// (https://spec.matrix.org/v1.16/server-server-api/#calculating-the-content-hash-for-an-event),
// signs the redacted event, derives the event ID from the reference hash
// (https://spec.matrix.org/v1.16/server-server-api/#calculating-the-reference-hash-for-an-event),
// enforces [MaxEventSize] and runs [Authorize].
//
// # Reading events
//
// [LoadEvent] parses stored events (trusting the stored ID), [ParseEvent]
// parses untrusted ones (recomputing the ID). [Event.Client] gives the
// client format, [Event.Redact] the redacted form, and [CanSee] (with
// [VisibilityAt]) decides history visibility
// (https://spec.matrix.org/v1.16/client-server-api/#room-history-visibility).
// [MayRedact] is the client-API redaction permission.
package rooms
