package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"myelin/server/storage"
)

const eventCols = `stream_pos, event_id, room_id, type, state_key, sender, origin_ts, membership, pdu, redacted_by, replaces_state, txn_id, txn_device`

func scanEvent(sc interface{ Scan(...any) error }) (*storage.Event, error) {
	var e storage.Event
	var sk sql.NullString
	var pdu string
	if err := sc.Scan(&e.Pos, &e.EventID, &e.RoomID, &e.Type, &sk, &e.Sender, &e.OriginTS, &e.Membership, &pdu,
		&e.RedactedBy, &e.ReplacesState, &e.TxnID, &e.TxnDevice); err != nil {
		return nil, err
	}
	if sk.Valid {
		k := sk.String
		e.StateKey = &k
	}
	e.PDU = json.RawMessage(pdu)
	return &e, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func queryEvents(ctx context.Context, q querier, query string, args ...any) ([]*storage.Event, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: query events: %w", err)
	}
	defer rows.Close()
	var out []*storage.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: scan event: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// txQuerier adapts *Tx to querier.
type txQuerier struct{ t *Tx }

func (q txQuerier) QueryContext(_ context.Context, s string, args ...any) (*sql.Rows, error) {
	return q.t.Query(s, args...)
}

type roomWriter struct {
	t      *Tx
	roomID string
}

func (w *roomWriter) Room() (storage.Room, error) {
	r := storage.Room{RoomID: w.roomID}
	var pub int
	err := w.t.QueryRow(`SELECT version, creator, published FROM rooms WHERE room_id=?`, w.roomID).Scan(&r.Version, &r.Creator, &pub)
	r.Published = pub != 0
	return r, notFound(err)
}

func (w *roomWriter) CreateRoom(r storage.Room) error {
	_, err := w.t.Exec(`INSERT INTO rooms(room_id, version, creator, published) VALUES(?,?,?,?)`, w.roomID, r.Version, r.Creator, r.Published)
	if isUnique(err) {
		return storage.ErrExists
	}
	return err
}

const currentStateQuery = `SELECT ` + eventCols + ` FROM events WHERE event_id IN (SELECT event_id FROM room_state WHERE room_id=?)`

func (w *roomWriter) State(typ, stateKey string) (*storage.Event, error) {
	evs, err := queryEvents(context.Background(), txQuerier{w.t}, `SELECT `+eventCols+` FROM events WHERE event_id=(SELECT event_id FROM room_state WHERE room_id=? AND type=? AND state_key=?)`, w.roomID, typ, stateKey)
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	return evs[0], nil
}

func (w *roomWriter) AllState() ([]*storage.Event, error) {
	return queryEvents(context.Background(), txQuerier{w.t}, currentStateQuery, w.roomID)
}

func (w *roomWriter) LastEvent() (*storage.Event, int64, error) {
	var depth int64
	e, err := scanEvent(w.t.QueryRow(`SELECT `+eventCols+` FROM events WHERE room_id=? ORDER BY stream_pos DESC LIMIT 1`, w.roomID))
	if err == sql.ErrNoRows {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	if err := w.t.QueryRow(`SELECT depth FROM events WHERE event_id=?`, e.EventID).Scan(&depth); err != nil {
		return nil, 0, err
	}
	return e, depth, nil
}

func (w *roomWriter) Append(ev storage.NewEvent) (*storage.Event, error) {
	pos := w.t.NextPos()
	var nseq int64
	if err := w.t.QueryRow(`SELECT COALESCE((SELECT nseq FROM events WHERE room_id=? ORDER BY stream_pos DESC LIMIT 1), 0)`, w.roomID).Scan(&nseq); err != nil {
		return nil, fmt.Errorf("sqlite: read nseq: %w", err)
	}
	if notifying[ev.Type] {
		nseq++
	}
	var sk any
	if ev.StateKey != nil {
		sk = *ev.StateKey
	}
	if _, err := w.t.Exec(`INSERT INTO events(stream_pos, event_id, room_id, type, state_key, sender, origin_ts, depth, membership, pdu, replaces_state, txn_id, txn_device, nseq)
		VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)`, pos, ev.EventID, w.roomID, ev.Type, sk, ev.Sender, ev.OriginTS, ev.Depth, ev.Membership,
		string(ev.PDU), ev.ReplacesState, ev.TxnID, ev.TxnDevice, nseq); err != nil {
		if isUnique(err) {
			return nil, storage.ErrExists
		}
		return nil, fmt.Errorf("sqlite: insert event: %w", err)
	}
	if ev.StateKey != nil {
		if _, err := w.t.Exec(`INSERT INTO room_state(room_id, type, state_key, event_id, stream_pos, membership) VALUES(?,?,?,?,?,?)
			ON CONFLICT(room_id, type, state_key) DO UPDATE SET event_id=excluded.event_id, stream_pos=excluded.stream_pos, membership=excluded.membership`,
			w.roomID, ev.Type, *ev.StateKey, ev.EventID, pos, ev.Membership); err != nil {
			return nil, fmt.Errorf("sqlite: update state: %w", err)
		}
		if ev.Type == "m.room.member" {
			if _, err := w.t.Exec(`DELETE FROM forgotten WHERE room_id=? AND user_id=?`, w.roomID, *ev.StateKey); err != nil {
				return nil, fmt.Errorf("sqlite: unforget: %w", err)
			}
		}
	}
	return &storage.Event{Pos: pos, EventID: ev.EventID, RoomID: w.roomID, Type: ev.Type, StateKey: ev.StateKey, Sender: ev.Sender,
		OriginTS: ev.OriginTS, Membership: ev.Membership, PDU: ev.PDU, ReplacesState: ev.ReplacesState, TxnID: ev.TxnID, TxnDevice: ev.TxnDevice}, nil
}

func (w *roomWriter) Redact(eventID, redactedBy string, pdu json.RawMessage) error {
	res, err := w.t.Exec(`UPDATE events SET pdu=?, redacted_by=? WHERE event_id=? AND room_id=?`, string(pdu), redactedBy, eventID, w.roomID)
	return affected(res, err)
}

func (w *roomWriter) PutTxn(k storage.TxnKey, res storage.TxnResult) error { return w.t.PutTxn(k, res) }

func (w *roomWriter) PutAlias(alias, creator string) error {
	_, err := w.t.Exec(`INSERT INTO room_aliases(alias, room_id, creator) VALUES(?,?,?)`, alias, w.roomID, creator)
	if isUnique(err) {
		return storage.ErrExists
	}
	return err
}

func (w *roomWriter) SetPublished(p bool) error {
	_, err := w.t.Exec(`UPDATE rooms SET published=? WHERE room_id=?`, p, w.roomID)
	return err
}

func (w *roomWriter) Wake(userIDs ...string) { w.t.Wake(userIDs...) }

func (w *roomWriter) OnCommit(fn func()) { w.t.OnCommit(fn) }

func (w *roomWriter) Txn(k storage.TxnKey) (storage.TxnResult, error) { return w.t.TxnTx(k) }

// WriteRoom implements storage.Rooms.
func (s *Store) WriteRoom(ctx context.Context, roomID string, fn func(w storage.RoomWriter) error) error {
	return s.Write(ctx, func(t *Tx) error { return fn(&roomWriter{t: t, roomID: roomID}) })
}

// Room implements storage.Rooms.
func (s *Store) Room(ctx context.Context, roomID string) (storage.Room, error) {
	r := storage.Room{RoomID: roomID}
	var pub int
	err := s.rq.QueryRowContext(ctx, `SELECT version, creator, published FROM rooms WHERE room_id=?`, roomID).Scan(&r.Version, &r.Creator, &pub)
	r.Published = pub != 0
	return r, notFound(err)
}

// Event implements storage.Rooms.
func (s *Store) Event(ctx context.Context, eventID string) (*storage.Event, error) {
	e, err := scanEvent(s.rq.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE event_id=?`, eventID))
	return e, notFound(err)
}

// StateEvent implements storage.Rooms.
func (s *Store) StateEvent(ctx context.Context, roomID, typ, stateKey string) (*storage.Event, error) {
	e, err := scanEvent(s.rq.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE event_id=(SELECT event_id FROM room_state WHERE room_id=? AND type=? AND state_key=?)`, roomID, typ, stateKey))
	return e, notFound(err)
}

// CurrentState implements storage.Rooms.
func (s *Store) CurrentState(ctx context.Context, roomID string) ([]*storage.Event, error) {
	return queryEvents(ctx, s.rq, currentStateQuery+` ORDER BY stream_pos`, roomID)
}

// StateAt implements storage.Rooms. With a linear DAG the state after position
// pos is, per (type, state_key), the latest state event at or before pos.
func (s *Store) StateAt(ctx context.Context, roomID string, pos int64) ([]*storage.Event, error) {
	return queryEvents(ctx, s.rq, `SELECT `+eventCols+` FROM events WHERE stream_pos IN (
		SELECT MAX(stream_pos) FROM events WHERE room_id=? AND state_key IS NOT NULL AND stream_pos<=? GROUP BY type, state_key)
		ORDER BY stream_pos`, roomID, pos)
}

// StateEventAt implements storage.Rooms.
func (s *Store) StateEventAt(ctx context.Context, roomID, typ, stateKey string, pos int64) (*storage.Event, error) {
	e, err := scanEvent(s.rq.QueryRowContext(ctx, `SELECT `+eventCols+` FROM events WHERE room_id=? AND type=? AND state_key=? AND stream_pos<=?
		ORDER BY stream_pos DESC LIMIT 1`, roomID, typ, stateKey, pos))
	return e, notFound(err)
}

// Events implements storage.Rooms.
func (s *Store) Events(ctx context.Context, roomID string, from, to int64, limit int, backward bool) ([]*storage.Event, error) {
	order := "ASC"
	if backward {
		order = "DESC"
	}
	evs, err := queryEvents(ctx, s.rq, `SELECT `+eventCols+` FROM events WHERE room_id=? AND stream_pos>? AND stream_pos<=?
		ORDER BY stream_pos `+order+` LIMIT ?`, roomID, from, to, limit)
	if err != nil {
		return nil, err
	}
	if backward {
		for i, j := 0, len(evs)-1; i < j; i, j = i+1, j-1 {
			evs[i], evs[j] = evs[j], evs[i]
		}
	}
	return evs, nil
}

// StateEventsRange implements storage.Rooms.
func (s *Store) StateEventsRange(ctx context.Context, roomID string, from, to int64) ([]*storage.Event, error) {
	return queryEvents(ctx, s.rq, `SELECT `+eventCols+` FROM events WHERE room_id=? AND state_key IS NOT NULL AND stream_pos>? AND stream_pos<=?
		ORDER BY stream_pos`, roomID, from, to)
}

// UserMemberships implements storage.Rooms.
func (s *Store) UserMemberships(ctx context.Context, userID string) ([]storage.MembershipRow, error) {
	rows, err := s.rq.QueryContext(ctx, `SELECT rs.room_id, rs.membership, rs.event_id, rs.stream_pos, f.user_id IS NOT NULL
		FROM room_state rs LEFT JOIN forgotten f ON f.room_id=rs.room_id AND f.user_id=rs.state_key
		WHERE rs.state_key=? AND rs.type='m.room.member'`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: memberships: %w", err)
	}
	defer rows.Close()
	var out []storage.MembershipRow
	for rows.Next() {
		m := storage.MembershipRow{UserID: userID}
		if err := rows.Scan(&m.RoomID, &m.Membership, &m.EventID, &m.Pos, &m.Forgotten); err != nil {
			return nil, fmt.Errorf("sqlite: memberships: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MembershipEvents implements storage.Rooms.
func (s *Store) MembershipEvents(ctx context.Context, roomID, userID string) ([]*storage.Event, error) {
	return queryEvents(ctx, s.rq, `SELECT `+eventCols+` FROM events WHERE room_id=? AND type='m.room.member' AND state_key=? ORDER BY stream_pos`, roomID, userID)
}

// VisibilityEvents implements storage.Rooms.
func (s *Store) VisibilityEvents(ctx context.Context, roomID string) ([]*storage.Event, error) {
	return queryEvents(ctx, s.rq, `SELECT `+eventCols+` FROM events WHERE room_id=? AND type='m.room.history_visibility' AND state_key='' ORDER BY stream_pos`, roomID)
}

// RoomsWithEvents implements storage.Rooms.
func (s *Store) RoomsWithEvents(ctx context.Context, roomIDs []string, from, to int64) (map[string]bool, error) {
	return s.roomsWith(ctx, "events", roomIDs, from, to)
}

// RoomsWithReceipts implements storage.Receipts.
func (s *Store) RoomsWithReceipts(ctx context.Context, roomIDs []string, from, to int64) (map[string]bool, error) {
	return s.roomsWith(ctx, "receipts", roomIDs, from, to)
}

func (s *Store) roomsWith(ctx context.Context, table string, roomIDs []string, from, to int64) (map[string]bool, error) {
	out := map[string]bool{}
	for len(roomIDs) > 0 {
		n := min(len(roomIDs), 500)
		chunk := roomIDs[:n]
		roomIDs = roomIDs[n:]
		args := []any{from, to}
		for _, r := range chunk {
			args = append(args, r)
		}
		rows, err := s.rq.QueryContext(ctx, `SELECT DISTINCT room_id FROM `+table+` WHERE stream_pos>? AND stream_pos<=? AND room_id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: rooms with events: %w", err)
		}
		for rows.Next() {
			var r string
			if err := rows.Scan(&r); err != nil {
				rows.Close()
				return nil, err
			}
			out[r] = true
		}
		rows.Close()
	}
	return out, nil
}

// Forget implements storage.Rooms.
func (s *Store) Forget(ctx context.Context, roomID, userID string) error {
	return s.Write(ctx, func(t *Tx) error {
		_, err := t.Exec(`INSERT INTO forgotten(room_id, user_id) VALUES(?,?) ON CONFLICT DO NOTHING`, roomID, userID)
		return err
	})
}

// UsersSharingRooms implements storage.Rooms.
func (s *Store) UsersSharingRooms(ctx context.Context, userID string) ([]string, error) {
	rows, err := s.rq.QueryContext(ctx, `SELECT DISTINCT o.state_key FROM room_state me JOIN room_state o
		ON o.room_id=me.room_id AND o.type='m.room.member' AND o.membership IN ('join','invite')
		WHERE me.type='m.room.member' AND me.state_key=? AND me.membership='join'`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: users sharing rooms: %w", err)
	}
	defer rows.Close()
	out := []string{}
	seenSelf := false
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		seenSelf = seenSelf || u == userID
		out = append(out, u)
	}
	if !seenSelf {
		out = append(out, userID)
	}
	return out, rows.Err()
}

// PublicRooms implements storage.Rooms.
func (s *Store) PublicRooms(ctx context.Context) ([]string, error) {
	rows, err := s.rq.QueryContext(ctx, `SELECT room_id FROM rooms WHERE published=1 ORDER BY room_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// notifying are the event types counted as unread.
var notifying = map[string]bool{"m.room.message": true, "m.room.encrypted": true, "m.sticker": true}

// UnreadCount implements storage.Rooms with one statement of indexed
// lookups: every event stores nseq, the room's running count of notifying
// events, so the count is nseq(latest) - nseq(read position).
func (s *Store) UnreadCount(ctx context.Context, roomID, userID string) (int, error) {
	var n int64
	err := s.rq.QueryRowContext(ctx, `SELECT
		COALESCE((SELECT nseq FROM events WHERE room_id=?1 ORDER BY stream_pos DESC LIMIT 1), 0) -
		COALESCE((SELECT nseq FROM events WHERE room_id=?1 AND stream_pos <= MAX(
			COALESCE((SELECT MAX(e.stream_pos) FROM receipts r JOIN events e ON e.event_id=r.event_id
				WHERE r.room_id=?1 AND r.user_id=?2 AND r.type IN ('m.read','m.read.private')), 0),
			COALESCE((SELECT MAX(stream_pos) FROM events WHERE room_id=?1 AND sender=?2), 0),
			COALESCE((SELECT stream_pos FROM room_state WHERE room_id=?1 AND type='m.room.member' AND state_key=?2), 0))
			ORDER BY stream_pos DESC LIMIT 1), 0)`, roomID, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("sqlite: unread count: %w", err)
	}
	return int(max(n, 0)), nil
}

// ResolveAlias implements storage.Aliases.
func (s *Store) ResolveAlias(ctx context.Context, alias string) (string, error) {
	var r string
	err := s.rq.QueryRowContext(ctx, `SELECT room_id FROM room_aliases WHERE alias=?`, alias).Scan(&r)
	return r, notFound(err)
}

// AliasCreator implements storage.Aliases.
func (s *Store) AliasCreator(ctx context.Context, alias string) (string, error) {
	var r string
	err := s.rq.QueryRowContext(ctx, `SELECT creator FROM room_aliases WHERE alias=?`, alias).Scan(&r)
	return r, notFound(err)
}

// PutAlias implements storage.Aliases.
func (s *Store) PutAlias(ctx context.Context, alias, roomID, creator string) error {
	return s.Write(ctx, func(t *Tx) error {
		_, err := t.Exec(`INSERT INTO room_aliases(alias, room_id, creator) VALUES(?,?,?)`, alias, roomID, creator)
		if isUnique(err) {
			return storage.ErrExists
		}
		return err
	})
}

// DeleteAlias implements storage.Aliases.
func (s *Store) DeleteAlias(ctx context.Context, alias string) error {
	return s.Write(ctx, func(t *Tx) error {
		res, err := t.Exec(`DELETE FROM room_aliases WHERE alias=?`, alias)
		return affected(res, err)
	})
}

// RoomAliases implements storage.Aliases.
func (s *Store) RoomAliases(ctx context.Context, roomID string) ([]string, error) {
	rows, err := s.rq.QueryContext(ctx, `SELECT alias FROM room_aliases WHERE room_id=? ORDER BY alias`, roomID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// PutReceipt implements storage.Receipts.
func (s *Store) PutReceipt(ctx context.Context, r storage.Receipt, wake []string) (int64, error) {
	var pos int64
	err := s.Write(ctx, func(t *Tx) error {
		pos = t.NextPos()
		if _, err := t.Exec(`INSERT INTO receipts(room_id, user_id, type, thread_id, event_id, ts, stream_pos) VALUES(?,?,?,?,?,?,?)
			ON CONFLICT(room_id, user_id, type, thread_id) DO UPDATE SET event_id=excluded.event_id, ts=excluded.ts, stream_pos=excluded.stream_pos`,
			r.RoomID, r.UserID, r.Type, r.ThreadID, r.EventID, r.TS, pos); err != nil {
			return fmt.Errorf("sqlite: put receipt: %w", err)
		}
		t.Wake(wake...)
		return nil
	})
	return pos, err
}

// ReceiptsRange implements storage.Receipts.
func (s *Store) ReceiptsRange(ctx context.Context, roomID string, from, to int64) ([]storage.Receipt, error) {
	rows, err := s.rq.QueryContext(ctx, `SELECT user_id, type, thread_id, event_id, ts, stream_pos FROM receipts
		WHERE room_id=? AND stream_pos>? AND stream_pos<=? ORDER BY stream_pos`, roomID, from, to)
	if err != nil {
		return nil, fmt.Errorf("sqlite: receipts: %w", err)
	}
	defer rows.Close()
	var out []storage.Receipt
	for rows.Next() {
		r := storage.Receipt{RoomID: roomID}
		if err := rows.Scan(&r.UserID, &r.Type, &r.ThreadID, &r.EventID, &r.TS, &r.Pos); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// UserReceipt implements storage.Receipts.
func (s *Store) UserReceipt(ctx context.Context, roomID, userID, typ string) (storage.Receipt, error) {
	r := storage.Receipt{RoomID: roomID, UserID: userID, Type: typ}
	err := s.rq.QueryRowContext(ctx, `SELECT thread_id, event_id, ts, stream_pos FROM receipts WHERE room_id=? AND user_id=? AND type=?
		ORDER BY stream_pos DESC LIMIT 1`, roomID, userID, typ).Scan(&r.ThreadID, &r.EventID, &r.TS, &r.Pos)
	return r, notFound(err)
}
