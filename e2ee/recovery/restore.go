package recovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"myelin/crypto/backup"
	"myelin/crypto/megolm"
	"myelin/id"
	"myelin/keys"
)

// RestoredSession is one decrypted backup entry, ready to import into the
// e2ee machine. Server-side metadata (is_verified, forwarded_count,
// first_message_index) is not carried over: it is the server's word (B7
// rule 4); FirstKnownIndex comes from the session key itself.
type RestoredSession struct {
	RoomID    id.RoomID
	SessionID string
	// SenderKey and SenderClaimedEd25519 are the session's provenance as
	// written in the entry. They are the original provenance (as backed up
	// by one of our devices) only when Provenance is backup.Authenticated;
	// otherwise anyone who knows the backup's public key, the server
	// included, could have written them, and the machine must show messages
	// from this session as "from backup, unauthenticated" (B7 rule 2).
	SenderKey            keys.Curve25519PublicKey
	SenderClaimedEd25519 keys.Ed25519PublicKey
	ForwardingChain      []string
	SessionKey           megolm.ExportedSessionKey
	FirstKnownIndex      uint32
	Provenance           backup.Provenance
}

// Authenticated reports whether the entry carried a valid MSC4048 MAC.
func (s *RestoredSession) Authenticated() bool { return s.Provenance == backup.Authenticated }

// Restored is the outcome of a restore: the entries that decrypted and the
// ones that were refused (each refusal is independent of the others).
type Restored struct {
	Sessions []RestoredSession
	Refused  []*EntryError
}

type roomSessions struct {
	Sessions map[string]json.RawMessage `json:"sessions"`
}

// Restore decrypts a GET /room_keys/keys body with key. The body as a whole
// must parse and be within MaxRestoreBodySize and MaxRestoreSessions;
// every entry is then decrypted on its own, and a bad one (wrong MAC,
// undecryptable, malformed, wrong algorithm, session ID not that of the
// key) is listed in Refused without affecting the others.
func Restore(user id.UserID, key *backup.DecryptionKey, body []byte) (*Restored, error) {
	if user.IsZero() || key == nil {
		return nil, fmt.Errorf("recovery: restore: %w", ErrInvalidArgument)
	}
	if len(body) > MaxRestoreBodySize {
		return nil, fmt.Errorf("recovery: restore: %w", ErrTooLarge)
	}
	var all struct {
		Rooms map[string]roomSessions `json:"rooms"`
	}
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, fmt.Errorf("recovery: restore: %w: %v", ErrMalformed, err)
	}
	n := 0
	for _, r := range all.Rooms {
		n += len(r.Sessions)
	}
	if n > MaxRestoreSessions {
		return nil, fmt.Errorf("recovery: restore: %w", ErrTooLarge)
	}
	out := &Restored{}
	for _, room := range sortedKeys(all.Rooms) {
		restoreRoom(out, user, key, room, all.Rooms[room].Sessions)
	}
	return out, nil
}

// RestoreRoom decrypts a GET /room_keys/keys/{roomId} body
// ({"sessions": {...}}) for roomID, with the bounds and rules of Restore.
func RestoreRoom(user id.UserID, key *backup.DecryptionKey, roomID string, body []byte) (*Restored, error) {
	if user.IsZero() || key == nil {
		return nil, fmt.Errorf("recovery: restore: %w", ErrInvalidArgument)
	}
	if len(body) > MaxRestoreBodySize {
		return nil, fmt.Errorf("recovery: restore: %w", ErrTooLarge)
	}
	var r roomSessions
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("recovery: restore: %w: %v", ErrMalformed, err)
	}
	if len(r.Sessions) > MaxRestoreSessions {
		return nil, fmt.Errorf("recovery: restore: %w", ErrTooLarge)
	}
	out := &Restored{}
	restoreRoom(out, user, key, roomID, r.Sessions)
	return out, nil
}

func restoreRoom(out *Restored, user id.UserID, key *backup.DecryptionKey, room string, sessions map[string]json.RawMessage) {
	for _, sid := range sortedKeys(sessions) {
		s, err := restoreEntry(user, key, room, sid, sessions[sid])
		if err != nil {
			out.Refused = append(out.Refused, &EntryError{RoomID: clip(room), SessionID: clip(sid), Reason: err})
			continue
		}
		out.Sessions = append(out.Sessions, *s)
	}
}

// clip bounds IDs copied into errors (they come from the server).
func clip(s string) string {
	if len(s) > MaxIDLength {
		return s[:MaxIDLength]
	}
	return s
}

func restoreEntry(user id.UserID, key *backup.DecryptionKey, room, sid string, raw json.RawMessage) (*RestoredSession, error) {
	if len(raw) > MaxEntrySize {
		return nil, ErrTooLarge
	}
	roomID, err := id.ParseRoomID(room)
	if err != nil {
		return nil, fmt.Errorf("%w: room ID: %v", ErrMalformed, err)
	}
	if sid == "" || len(sid) > MaxIDLength {
		return nil, fmt.Errorf("%w: session ID", ErrMalformed)
	}
	// Only session_data is read: first_message_index, forwarded_count and
	// is_verified are server-controlled (B7 rule 4).
	var e struct {
		SessionData json.RawMessage `json:"session_data"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(e.SessionData) == 0 || bytes.Equal(e.SessionData, []byte("null")) {
		return nil, fmt.Errorf("%w: no session_data", ErrMalformed)
	}
	sd, err := backup.ParseSessionData(e.SessionData)
	if err != nil {
		return nil, err
	}
	dec, err := key.Decrypt(user, sd)
	if err != nil {
		return nil, err
	}
	defer clear(dec.Plaintext)
	var b backedUpSession
	if err := json.Unmarshal(dec.Plaintext, &b); err != nil {
		return nil, fmt.Errorf("%w: plaintext", ErrMalformed)
	}
	if b.Algorithm != MegolmAlgorithm {
		return nil, fmt.Errorf("%w: algorithm", ErrMalformed)
	}
	sk, err := megolm.ParseExportedSessionKey(b.SessionKey)
	if err != nil {
		return nil, fmt.Errorf("%w: session_key", ErrMalformed)
	}
	if sk.ID() != sid {
		return nil, ErrSessionIDMismatch
	}
	senderKey, err := keys.ParseCurve25519PublicKey(b.SenderKey)
	if err != nil {
		return nil, fmt.Errorf("%w: sender_key", ErrMalformed)
	}
	ed, err := keys.ParseEd25519PublicKey(b.SenderClaimedKeys["ed25519"])
	if err != nil {
		return nil, fmt.Errorf("%w: sender_claimed_keys", ErrMalformed)
	}
	if len(b.ForwardingChain) > MaxForwardingChain {
		return nil, fmt.Errorf("%w: forwarding chain", ErrTooLarge)
	}
	for _, k := range b.ForwardingChain {
		if _, err := keys.ParseCurve25519PublicKey(k); err != nil {
			return nil, fmt.Errorf("%w: forwarding chain", ErrMalformed)
		}
	}
	chain := append([]string{}, b.ForwardingChain...)
	if dec.Provenance != backup.Authenticated && dec.Provenance != backup.Unauthenticated {
		return nil, errors.New("recovery: unknown provenance")
	}
	return &RestoredSession{
		RoomID: roomID, SessionID: sid, SenderKey: senderKey, SenderClaimedEd25519: ed,
		ForwardingChain: chain, SessionKey: sk, FirstKnownIndex: sk.Index(), Provenance: dec.Provenance,
	}, nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
