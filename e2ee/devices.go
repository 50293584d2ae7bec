package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"myelin/crypto/crosssign"
	"myelin/crypto/megolm"
	"myelin/id"
	"myelin/keys"
)

// userRecord is KindUser: what we know about one user's keys.
type userRecord struct {
	UserID   string `json:"user_id"`
	Tracked  bool   `json:"tracked"`
	Outdated bool   `json:"outdated"`
	Gen      uint64 `json:"gen"`
	// MasterKey and SelfSigningKey as last served (valid identity only).
	MasterKey      string `json:"master_key,omitempty"`
	SelfSigningKey string `json:"self_signing_key,omitempty"`
	// Pinned is the master key pinned on first sight (TOFU), or after
	// the user acknowledged a change.
	Pinned string `json:"pinned,omitempty"`
	// Verified: the current master key is signed by our trusted USK.
	Verified bool `json:"verified"`
	// WasVerified: the pinned identity was verified at some point.
	WasVerified bool `json:"was_verified"`
	// ChangePending: the identity changed from the pin and the user has
	// not acknowledged it.
	ChangePending bool                     `json:"change_pending"`
	Devices       map[string]*deviceRecord `json:"devices"`
}

// deviceRecord is one device of a userRecord.
type deviceRecord struct {
	DeviceID    string          `json:"device_id"`
	Ed25519     string          `json:"ed25519"`
	Curve25519  string          `json:"curve25519"`
	Raw         json.RawMessage `json:"raw"`
	CrossSigned bool            `json:"cross_signed"`
	// KeysChanged: the server later served other keys under this ID; the
	// device is kept only as a tombstone and never trusted again (A1b).
	KeysChanged bool `json:"keys_changed,omitempty"`
	// KeyReused: one of its keys appeared under another device (B10).
	KeyReused   bool  `json:"key_reused,omitempty"`
	LastUnwedge int64 `json:"last_unwedge,omitempty"`
}

func (d *deviceRecord) usable() bool { return d != nil && !d.KeysChanged && !d.KeyReused }

// roomRecord is KindRoom.
type roomRecord struct {
	RoomID       string            `json:"room_id"`
	Encrypted    bool              `json:"encrypted"`
	RotationMs   int64             `json:"rotation_ms"`
	RotationMsgs int64             `json:"rotation_msgs"`
	Broken       string            `json:"broken,omitempty"` // why the current encryption state is refused
	Members      map[string]string `json:"members"`          // user -> join|invite
	// SharedHistory: m.room.history_visibility is shared or
	// world_readable, so our sessions may go into room-key bundles
	// (MSC4268); a change rotates the outbound session (B6 rule 3).
	SharedHistory bool `json:"shared_history,omitempty"`
}

func (m *Machine) loadUser(ctx context.Context, user string) (*userRecord, error) {
	if u, ok := m.users[user]; ok {
		return u, nil
	}
	u := &userRecord{}
	ok, err := m.getJSON(ctx, KindUser, user, u)
	if err != nil {
		return nil, err
	}
	if !ok {
		u = &userRecord{UserID: user}
	}
	if u.Devices == nil {
		u.Devices = map[string]*deviceRecord{}
	}
	m.users[user] = u
	return u, nil
}

func (m *Machine) loadRoom(ctx context.Context, room string) (*roomRecord, error) {
	if r, ok := m.rooms[room]; ok {
		return r, nil
	}
	r := &roomRecord{}
	ok, err := m.getJSON(ctx, KindRoom, room, r)
	if err != nil {
		return nil, err
	}
	if !ok {
		r = &roomRecord{RoomID: room}
	}
	if r.Members == nil {
		r.Members = map[string]string{}
	}
	m.rooms[room] = r
	return r, nil
}

func (m *Machine) trackUser(ctx context.Context, ch *Changes, user string) error {
	u, err := m.loadUser(ctx, user)
	if err != nil {
		return err
	}
	if u.Tracked {
		return nil
	}
	u.Tracked, u.Outdated = true, true
	u.Gen++
	return putJSON(ch, KindUser, user, u)
}

func clampRotation(ms, msgs int64) (int64, int64) {
	if ms <= 0 || ms > MaxRotationPeriod.Milliseconds() {
		ms = MaxRotationPeriod.Milliseconds()
	}
	if ms < MinRotationPeriod.Milliseconds() {
		ms = MinRotationPeriod.Milliseconds()
	}
	if msgs <= 0 || msgs > MaxRotationMessages {
		msgs = MaxRotationMessages
	}
	return ms, msgs
}

func (m *Machine) roomUpdate(ctx context.Context, ch *Changes, res *Result, ru RoomUpdate) error {
	if _, err := id.ParseRoomID(ru.RoomID); err != nil {
		return nil // not a room we can talk about
	}
	r, err := m.loadRoom(ctx, ru.RoomID)
	if err != nil {
		return err
	}
	for _, ev := range ru.Events {
		if ev.StateKey == nil || len(ev.Content) > maxEventSize {
			continue
		}
		switch ev.Type {
		case "m.room.encryption":
			if *ev.StateKey != "" {
				continue
			}
			var c struct {
				Algorithm string `json:"algorithm"`
				Ms        int64  `json:"rotation_period_ms"`
				Msgs      int64  `json:"rotation_period_msgs"`
			}
			_ = json.Unmarshal(ev.Content, &c)
			if c.Algorithm == crosssign.AlgorithmMegolm {
				r.Encrypted = true
				r.Broken = ""
				r.RotationMs, r.RotationMsgs = clampRotation(c.Ms, c.Msgs)
				continue
			}
			// Unknown, changed or removed algorithm. Never a downgrade:
			// the room stays encrypted and sending is refused (B13).
			wasEncrypted := r.Encrypted
			r.Encrypted = true
			r.Broken = fmt.Sprintf("m.room.encryption now names algorithm %q", c.Algorithm)
			if wasEncrypted {
				res.Alerts = append(res.Alerts, Alert{Code: AlertEncryptionStateChanged, RoomID: r.RoomID,
					Message: "the room's encryption settings changed to something myelin will not use; sending is refused"})
			}
		case "m.room.history_visibility":
			if *ev.StateKey != "" {
				continue
			}
			var c struct {
				V string `json:"history_visibility"`
			}
			_ = json.Unmarshal(ev.Content, &c)
			r.SharedHistory = c.V == "shared" || c.V == "world_readable"
		case "m.room.member":
			user := *ev.StateKey
			if _, err := id.ParseUserIDLenient(user); err != nil {
				continue
			}
			var c struct {
				Membership string `json:"membership"`
			}
			_ = json.Unmarshal(ev.Content, &c)
			switch c.Membership {
			case "join", "invite":
				r.Members[user] = c.Membership
				if err := m.trackUser(ctx, ch, user); err != nil {
					return err
				}
			default:
				delete(r.Members, user)
			}
		}
	}
	return putJSON(ch, KindRoom, r.RoomID, r)
}

const maxEventSize = 65536

func (m *Machine) deviceLists(ctx context.Context, ch *Changes, changed, left []string) error {
	for _, user := range changed {
		u, err := m.loadUser(ctx, user)
		if err != nil {
			return err
		}
		if !u.Tracked && user != m.user.String() {
			continue
		}
		u.Tracked, u.Outdated = true, true
		u.Gen++
		if err := putJSON(ch, KindUser, user, u); err != nil {
			return err
		}
	}
	for _, user := range left {
		if user == m.user.String() {
			continue
		}
		u, err := m.loadUser(ctx, user)
		if err != nil {
			return err
		}
		if u.Tracked {
			u.Tracked = false
			if err := putJSON(ch, KindUser, user, u); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *Machine) markAllOutdated(ctx context.Context, ch *Changes) error {
	recs, err := m.store.List(ctx, KindUser, "")
	if err != nil {
		return err
	}
	for _, rec := range recs {
		u, err := m.loadUser(ctx, rec.Key)
		if err != nil {
			return err
		}
		if u.Tracked {
			u.Outdated = true
			u.Gen++
			if err := putJSON(ch, KindUser, u.UserID, u); err != nil {
				return err
			}
		}
	}
	return nil
}

type queryMeta struct {
	Gens map[string]uint64 `json:"gens"`
}

// planQuery queues one /keys/query for every tracked user whose device list
// is outdated. At most one query is in flight (serialised, B1 rule 7).
func (m *Machine) planQuery(ctx context.Context, ch *Changes) error {
	if pend, err := m.pending(ctx, RequestKeysQuery); err != nil || len(pend) > 0 {
		return err
	}
	if err := m.trackUser(ctx, ch, m.user.String()); err != nil {
		return err
	}
	recs, err := m.store.List(ctx, KindUser, "")
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, r := range recs {
		names[r.Key] = true
	}
	for u := range m.users {
		names[u] = true
	}
	meta := queryMeta{Gens: map[string]uint64{}}
	dk := map[string][]string{}
	for name := range names {
		u, err := m.loadUser(ctx, name)
		if err != nil {
			return err
		}
		if u.Tracked && u.Outdated {
			meta.Gens[name] = u.Gen
			dk[name] = []string{}
		}
	}
	if len(dk) == 0 {
		return nil
	}
	_, err = m.queueRequest(ch, RequestKeysQuery, "", map[string]any{"device_keys": dk, "timeout": 10000}, meta)
	return err
}

type queryResponse struct {
	DeviceKeys      map[string]map[string]json.RawMessage `json:"device_keys"`
	MasterKeys      map[string]json.RawMessage            `json:"master_keys"`
	SelfSigningKeys map[string]json.RawMessage            `json:"self_signing_keys"`
}

func (m *Machine) queryDone(ctx context.Context, ch *Changes, res *Result, req *Request, resp []byte) error {
	var meta queryMeta
	if err := json.Unmarshal(req.Meta, &meta); err != nil {
		return fmt.Errorf("e2ee: keys/query bookkeeping: %w", err)
	}
	var qr queryResponse
	if err := json.Unmarshal(resp, &qr); err != nil {
		return fmt.Errorf("e2ee: keys/query response: %w: %v", ErrBadResponse, err)
	}
	// Only the users we asked about; anything else the server adds is ignored.
	users := make([]string, 0, len(meta.Gens))
	for u := range meta.Gens {
		users = append(users, u)
	}
	slices.Sort(users)
	for _, user := range users {
		if err := m.applyUserKeys(ctx, ch, res, user, meta.Gens[user], &qr); err != nil {
			return err
		}
	}
	return nil
}

func (m *Machine) applyUserKeys(ctx context.Context, ch *Changes, res *Result, user string, gen uint64, qr *queryResponse) error {
	u, err := m.loadUser(ctx, user)
	if err != nil {
		return err
	}
	uid, err := id.ParseUserIDLenient(user)
	if err != nil {
		return nil
	}
	in := crosssign.Input{
		UserID:         uid,
		MasterKey:      qr.MasterKeys[user],
		SelfSigningKey: qr.SelfSigningKeys[user],
		Devices:        map[string][]byte{},
		Our:            m.ownTrust,
		KnownDevices:   map[id.DeviceID]crosssign.KnownDevice{},
	}
	for devID, raw := range qr.DeviceKeys[user] {
		in.Devices[devID] = raw
	}
	if u.Pinned != "" {
		pk, err := keys.ParseEd25519PublicKey(u.Pinned)
		if err == nil {
			in.PinnedMasterKey = &pk
		}
	}
	for devID, d := range u.Devices {
		did, err1 := id.ParseDeviceID(devID)
		ed, err2 := keys.ParseEd25519PublicKey(d.Ed25519)
		cv, err3 := keys.ParseCurve25519PublicKey(d.Curve25519)
		if err1 == nil && err2 == nil && err3 == nil {
			in.KnownDevices[did] = crosssign.KnownDevice{Ed25519: ed, Curve25519: cv}
		}
	}
	ev, err := crosssign.Evaluate(in)
	if err != nil {
		res.reject(RejectDeviceKeysInvalid, user, "", fmt.Errorf("e2ee: keys of %s refused: %w", user, err))
		return nil
	}
	if u.Gen == gen {
		u.Outdated = false // a newer change arrived meanwhile otherwise: query again
	}
	// Identity (B1 rules 2-4).
	if ev.IdentityErr != nil && (len(in.MasterKey) > 0 || len(in.SelfSigningKey) > 0) {
		res.reject(RejectIdentityInvalid, user, "", fmt.Errorf("e2ee: cross-signing identity of %s ignored: %w", user, ev.IdentityErr))
	}
	cur := ""
	if ev.IdentityErr == nil {
		cur = ev.MasterKey.String()
		u.MasterKey, u.SelfSigningKey = cur, ev.SelfSigningKey.String()
	} else {
		u.MasterKey, u.SelfSigningKey = "", ""
	}
	switch {
	case u.Pinned == "" && cur != "":
		u.Pinned = cur // trust on first use
		u.ChangePending = false
	case user == m.user.String() && cur != "" && cur == m.meta.OwnMaster:
		// Our own identity, replaced by this device (TrustOwnIdentity named
		// exactly this master key): the pin follows without an alert. A
		// replacement this device did not make still alerts below.
		u.Pinned = cur
		u.ChangePending = false
	case u.Pinned != "" && cur != u.Pinned:
		if !u.ChangePending {
			code, msg := AlertIdentityChanged, "the cryptographic identity of "+user+" changed; this may be a new login of theirs or an attack"
			if u.WasVerified {
				code, msg = AlertVerificationViolation, "the verified identity of "+user+" changed; sending in shared rooms is blocked until you acknowledge"
			}
			if user == m.user.String() {
				code, msg = AlertOwnIdentityReset, "your own cross-signing identity changed and this device did not do it"
			}
			res.Alerts = append(res.Alerts, Alert{Code: code, UserID: user, Message: msg})
		}
		u.ChangePending = true
	case cur == u.Pinned:
		u.ChangePending = false
	}
	u.Verified = ev.Verified && !u.ChangePending && cur != ""
	if u.Verified {
		u.WasVerified = true
	}
	// Devices (A1b, B1 rules 1 and 5, B10).
	old := u.Devices
	u.Devices = map[string]*deviceRecord{}
	for listed, derr := range ev.Invalid {
		res.reject(RejectDeviceKeysInvalid, user, listed, fmt.Errorf("e2ee: device %s of %s refused: %w", listed, user, derr))
		if errors.Is(derr, crosssign.ErrDeviceKeysChanged) {
			if d := old[listed]; d != nil {
				d.KeysChanged = true
				u.Devices[listed] = d
			}
			res.Alerts = append(res.Alerts, Alert{Code: AlertDeviceKeysChanged, UserID: user, DeviceID: listed,
				Message: "device " + listed + " of " + user + " now has different keys; it is treated as an untrusted new device"})
		}
	}
	for did, st := range ev.Devices {
		devID := did.String()
		d := &deviceRecord{
			DeviceID: devID, Ed25519: st.Device.Ed25519.String(), Curve25519: st.Device.Curve25519.String(),
			Raw: qr.DeviceKeys[user][devID], CrossSigned: st.CrossSigned,
		}
		if o := old[devID]; o != nil {
			d.LastUnwedge = o.LastUnwedge
			d.KeyReused = o.KeyReused
		}
		if ok, err := m.indexDeviceKeys(ctx, ch, res, user, d); err != nil {
			return err
		} else if !ok {
			d.KeyReused = true
		}
		u.Devices[devID] = d
	}
	return putJSON(ch, KindUser, user, u)
}

// indexDeviceKeys records which device owns each key, and reports false if
// a key already belongs to another (user, device): both are then distrusted
// (B10 rule 2).
func (m *Machine) indexDeviceKeys(ctx context.Context, ch *Changes, res *Result, user string, d *deviceRecord) (bool, error) {
	owner := user + "|" + d.DeviceID
	ok := true
	for _, k := range []string{"c:" + d.Curve25519, "e:" + d.Ed25519} {
		raw, err := m.store.Get(ctx, KindCurveIndex, k)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false, err
		}
		if err == nil && string(raw) != owner {
			other := strings.SplitN(string(raw), "|", 2)
			if len(other) == 2 {
				ou, err := m.loadUser(ctx, other[0])
				if err != nil {
					return false, err
				}
				if od := ou.Devices[other[1]]; od != nil && !od.KeyReused {
					od.KeyReused = true
					if err := putJSON(ch, KindUser, ou.UserID, ou); err != nil {
						return false, err
					}
				}
			}
			if ok {
				res.reject(RejectKeyReused, user, d.DeviceID, fmt.Errorf("e2ee: a key of device %s of %s already belongs to device %s; both are distrusted", d.DeviceID, user, raw))
				res.Alerts = append(res.Alerts, Alert{Code: AlertKeyReused, UserID: user, DeviceID: d.DeviceID,
					Message: "a device key of " + user + " is also used by another device; both devices are distrusted"})
			}
			ok = false
			continue
		}
		if err != nil {
			ch.Put(KindCurveIndex, k, []byte(owner))
		}
	}
	return ok, nil
}

// deviceByCurve finds the device owning a Curve25519 identity key.
func (m *Machine) deviceByCurve(ctx context.Context, curve string) (*userRecord, *deviceRecord, error) {
	raw, err := m.store.Get(ctx, KindCurveIndex, "c:"+curve)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	parts := strings.SplitN(string(raw), "|", 2)
	if len(parts) != 2 {
		return nil, nil, nil
	}
	u, err := m.loadUser(ctx, parts[0])
	if err != nil {
		return nil, nil, err
	}
	d := u.Devices[parts[1]]
	if d == nil || d.Curve25519 != curve {
		return u, nil, nil
	}
	return u, d, nil
}

// trustOf rates a device under its owner's current identity state.
func (m *Machine) trustOf(u *userRecord, d *deviceRecord) Trust {
	switch {
	case u == nil || d == nil:
		return TrustUnknownDevice
	case !d.usable():
		return TrustUnverifiedDevice
	case u.ChangePending:
		return TrustIdentityChanged
	case !d.CrossSigned:
		return TrustUnverifiedDevice
	case u.Verified:
		return TrustVerifiedIdentity
	case u.Pinned != "" && u.Pinned == u.MasterKey:
		return TrustCrossSignedPinned
	}
	return TrustUnverifiedDevice
}

// AcknowledgeIdentityChange accepts the current identity of user as the new
// pin (unverified), which unblocks sending in rooms shared with them.
func (m *Machine) AcknowledgeIdentityChange(ctx context.Context, user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.loadUser(ctx, user)
	if err != nil {
		return err
	}
	u.Pinned = u.MasterKey
	u.ChangePending = false
	u.WasVerified = false
	u.Verified = false
	u.Outdated = true
	u.Gen++
	ch := &Changes{}
	if err := putJSON(ch, KindUser, user, u); err != nil {
		return err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return fmt.Errorf("e2ee: acknowledge identity change: %w", err)
	}
	return nil
}

// IdentityStatus is what the machine knows about a user's identity.
type IdentityStatus struct {
	MasterKey     string
	Pinned        string
	Verified      bool
	ChangePending bool
	Devices       map[string]Trust
}

// Identity returns the identity status of user.
func (m *Machine) Identity(ctx context.Context, user string) (*IdentityStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.loadUser(ctx, user)
	if err != nil {
		return nil, err
	}
	st := &IdentityStatus{MasterKey: u.MasterKey, Pinned: u.Pinned, Verified: u.Verified, ChangePending: u.ChangePending, Devices: map[string]Trust{}}
	for id, d := range u.Devices {
		st.Devices[id] = m.trustOf(u, d)
	}
	return st, nil
}

// PlaintextAllowed reports whether the client may send an unencrypted event
// into room: only if the room was never seen encrypted (B13 rule 1).
func (m *Machine) PlaintextAllowed(ctx context.Context, room string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.loadRoom(ctx, room)
	if err != nil {
		return false, err
	}
	return !r.Encrypted, nil
}

// IsEncrypted reports whether room was ever seen encrypted.
func (m *Machine) IsEncrypted(ctx context.Context, room string) (bool, error) {
	ok, err := m.PlaintextAllowed(ctx, room)
	return !ok, err
}

// MarkRoomEncrypted records that room is encrypted (for a room this client
// created encrypted, before the state echo arrives).
func (m *Machine) MarkRoomEncrypted(ctx context.Context, room string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.loadRoom(ctx, room)
	if err != nil {
		return err
	}
	if r.Encrypted {
		return nil
	}
	r.Encrypted = true
	r.RotationMs, r.RotationMsgs = clampRotation(0, 0)
	ch := &Changes{}
	if err := putJSON(ch, KindRoom, room, r); err != nil {
		return err
	}
	return m.store.Save(ctx, ch)
}

var _ = megolm.MaxMessageSize
