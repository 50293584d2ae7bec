package storage

import (
	"context"
	"encoding/json"
)

// StateKey names one piece of room state.
type StateKey struct {
	Type     string
	StateKey string
}

// Event is a stored room event: its PDU JSON and the columns the server queries.
type Event struct {
	Pos        int64 // stream position
	EventID    string
	RoomID     string
	Type       string
	StateKey   *string
	Sender     string
	OriginTS   int64
	Membership string // content.membership for m.room.member events
	// PDU is the event in federation format (redacted if RedactedBy is set).
	PDU json.RawMessage
	// RedactedBy is the ID of the redaction applied to this event.
	RedactedBy string
	// ReplacesState is the event ID of the state event this one replaced.
	ReplacesState string
	// TxnID and TxnDevice are the client transaction that created the event.
	TxnID     string
	TxnDevice string
}

// IsState reports whether e is a state event.
func (e *Event) IsState() bool { return e.StateKey != nil }

// Room is a room's metadata.
type Room struct {
	RoomID    string
	Version   string
	Creator   string
	Published bool // listed in the public room directory
}

// NewEvent is an event about to be appended: the PDU is built and authorised.
type NewEvent struct {
	EventID       string
	Type          string
	StateKey      *string
	Sender        string
	OriginTS      int64
	Depth         int64
	Membership    string
	PDU           json.RawMessage
	TxnID         string
	TxnDevice     string
	ReplacesState string
}

// RoomWriter is handed to the callback of [Rooms.WriteRoom]; it runs inside the
// single write transaction, so reads see the room exactly as it will be
// appended to (event creation is serialised per room and the DAG stays linear).
type RoomWriter interface {
	// Room returns the room's metadata or ErrNotFound (before CreateRoom).
	Room() (Room, error)
	// CreateRoom inserts the room row; ErrExists if it exists.
	CreateRoom(r Room) error
	// State returns the current state event for (type, state_key), or nil.
	State(typ, stateKey string) (*Event, error)
	// AllState returns the full current state.
	AllState() ([]*Event, error)
	// LastEvent returns the latest event (ID and depth) of the room, or nil.
	LastEvent() (*Event, int64, error)
	// Append stores ev (updating current state for state events) and returns it
	// with its stream position.
	Append(ev NewEvent) (*Event, error)
	// Redact replaces a stored event's PDU with its redacted form.
	Redact(eventID, redactedBy string, redactedPDU json.RawMessage) error
	// PutTxn records the result of a client transaction.
	PutTxn(k TxnKey, res TxnResult) error
	// PutAlias maps alias to this room; ErrExists if taken.
	PutAlias(alias, creator string) error
	// SetPublished sets the room's public-directory flag.
	SetPublished(published bool) error
	// Txn returns a stored client transaction result, or ErrNotFound.
	Txn(k TxnKey) (TxnResult, error)
	// Wake marks users whose /sync must wake after commit.
	Wake(userIDs ...string)
	// OnCommit runs fn after the transaction committed.
	OnCommit(fn func())
}

// MembershipRow is a user's current membership in one room.
type MembershipRow struct {
	RoomID     string
	UserID     string
	Membership string
	EventID    string
	Pos        int64
	Forgotten  bool
}

// Rooms stores rooms, events and state.
type Rooms interface {
	// WriteRoom runs fn inside the write transaction for roomID.
	WriteRoom(ctx context.Context, roomID string, fn func(w RoomWriter) error) error
	// Room returns metadata or ErrNotFound.
	Room(ctx context.Context, roomID string) (Room, error)
	// Event returns one event or ErrNotFound.
	Event(ctx context.Context, eventID string) (*Event, error)
	// StateEvent returns current state (type, state_key) or ErrNotFound.
	StateEvent(ctx context.Context, roomID, typ, stateKey string) (*Event, error)
	// CurrentState returns the room's full current state.
	CurrentState(ctx context.Context, roomID string) ([]*Event, error)
	// StateAt returns the state after all events with position <= pos.
	StateAt(ctx context.Context, roomID string, pos int64) ([]*Event, error)
	// StateEventAt returns one state entry at pos, or ErrNotFound.
	StateEventAt(ctx context.Context, roomID, typ, stateKey string, pos int64) (*Event, error)
	// Events returns up to limit events of a room with from < pos <= to in
	// ascending order (backward=false: the oldest ones; backward=true: the
	// newest ones, still returned ascending).
	Events(ctx context.Context, roomID string, from, to int64, limit int, backward bool) ([]*Event, error)
	// StateEventsRange returns the state events of a room with from < pos <= to.
	StateEventsRange(ctx context.Context, roomID string, from, to int64) ([]*Event, error)
	// UserMemberships returns a user's current membership in every room they have one in.
	UserMemberships(ctx context.Context, userID string) ([]MembershipRow, error)
	// MembershipEvents returns all m.room.member events for userID in roomID, ascending.
	MembershipEvents(ctx context.Context, roomID, userID string) ([]*Event, error)
	// VisibilityEvents returns all m.room.history_visibility events of a room, ascending.
	VisibilityEvents(ctx context.Context, roomID string) ([]*Event, error)
	// RoomsWithEvents returns which of roomIDs have events with from < pos <= to.
	RoomsWithEvents(ctx context.Context, roomIDs []string, from, to int64) (map[string]bool, error)
	// Forget marks a left room forgotten for userID.
	Forget(ctx context.Context, roomID, userID string) error
	// UsersSharingRooms returns the users who are joined to or invited into a room
	// that userID is joined to (including userID).
	UsersSharingRooms(ctx context.Context, userID string) ([]string, error)
	// PublicRooms lists rooms published in the directory.
	PublicRooms(ctx context.Context) ([]string, error)
	// UnreadCount counts the notifying events (m.room.message,
	// m.room.encrypted, m.sticker) of a room after the user's read position:
	// the later of their latest m.read / m.read.private receipt and their own
	// latest event (at least their current membership event).
	UnreadCount(ctx context.Context, roomID, userID string) (int, error)
}

// Aliases stores room aliases.
type Aliases interface {
	// ResolveAlias returns the room ID of an alias or ErrNotFound.
	ResolveAlias(ctx context.Context, alias string) (string, error)
	// PutAlias maps an alias; ErrExists if taken.
	PutAlias(ctx context.Context, alias, roomID, creator string) error
	// DeleteAlias removes an alias; ErrNotFound if absent.
	DeleteAlias(ctx context.Context, alias string) error
	// AliasCreator returns who created an alias.
	AliasCreator(ctx context.Context, alias string) (string, error)
	// RoomAliases lists the aliases of a room.
	RoomAliases(ctx context.Context, roomID string) ([]string, error)
}

// Receipt is one read receipt.
type Receipt struct {
	RoomID   string
	UserID   string
	Type     string // m.read, m.read.private
	ThreadID string // "" for unthreaded
	EventID  string
	TS       int64
	Pos      int64 // stream position of the receipt
}

// Receipts stores read receipts.
type Receipts interface {
	// PutReceipt stores or replaces a receipt and returns its stream position.
	PutReceipt(ctx context.Context, r Receipt, wake []string) (int64, error)
	// ReceiptsRange returns receipts of a room with from < pos <= to.
	ReceiptsRange(ctx context.Context, roomID string, from, to int64) ([]Receipt, error)
	// RoomsWithReceipts returns which of roomIDs have receipts with from < pos <= to.
	RoomsWithReceipts(ctx context.Context, roomIDs []string, from, to int64) (map[string]bool, error)
	// UserReceipt returns one user's receipt of a type, or ErrNotFound.
	UserReceipt(ctx context.Context, roomID, userID, typ string) (Receipt, error)
}

// Store is everything the core homeserver needs from an engine. The E2EE
// storage ([E2EE]) is passed separately so that the two can evolve apart; the
// SQLite engine implements both.
type Store interface {
	Accounts
	AccountData
	Filters
	Txns
	Rooms
	Aliases
	Receipts
	MediaStore
	Position
	// Close stops the writer and closes the database.
	Close() error
}
