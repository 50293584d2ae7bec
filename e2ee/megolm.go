package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"myelin/crypto/crosssign"
	"myelin/crypto/megolm"
	"myelin/id"
	"myelin/keys"
)

// Withheld codes (spec m.room_key.withheld).
const (
	WithheldBlacklisted  = "m.blacklisted"
	WithheldUnverified   = "m.unverified"
	WithheldUnauthorised = "m.unauthorised"
	WithheldUnavailable  = "m.unavailable"
	WithheldNoOlm        = "m.no_olm"
)

type sharedDevice struct {
	Curve string `json:"curve"`
	Index uint32 `json:"index"`
}

// outboundSession is KindOutboundGroup: our Megolm session for a room.
type outboundSession struct {
	RoomID     string                  `json:"room_id"`
	SessionID  string                  `json:"session_id"`
	Pickle     []byte                  `json:"pickle"`
	Created    int64                   `json:"created"`
	SharedWith map[string]sharedDevice `json:"shared_with"` // "user|device"
	Withheld   map[string]string       `json:"withheld"`    // "user|device" -> code sent
	// SharedHistory: the room's history was shared when the session was
	// created; its m.room_key carries shared_history (MSC4268).
	SharedHistory bool `json:"shared_history,omitempty"`
	s             *megolm.OutboundSession
}

// inboundSession is KindInboundGroup: a Megolm session we can decrypt with,
// and where it came from.
type inboundSession struct {
	SessionID string `json:"session_id"`
	RoomID    string `json:"room_id"`
	Pickle    []byte `json:"pickle"`
	// Provenance: for m.room_key, the Olm-authenticated device that sent it;
	// for forwards, the claimed original sender.
	SenderUser    string `json:"sender_user"`
	SenderDevice  string `json:"sender_device"`
	SenderCurve   string `json:"sender_curve"`
	SenderEd25519 string `json:"sender_ed25519"`
	Forwarded     bool   `json:"forwarded,omitempty"`
	ForwardedBy   string `json:"forwarded_by,omitempty"` // curve25519 of our device that forwarded it
	FromBackup    bool   `json:"from_backup,omitempty"`
	// BundleFrom: the user whose MSC4268 room-key bundle carried the
	// session (with FromBackup: only that user's word vouches for it).
	BundleFrom string `json:"bundle_from,omitempty"`
	// SharedHistory: the session's creator marked it shared_history in
	// its m.room_key (or it is ours and was so created); only these go
	// into the room-key bundles we build (B6 rule 3).
	SharedHistory bool  `json:"shared_history,omitempty"`
	Received      int64 `json:"received"`
	s             *megolm.InboundSession
}

type indexRecord struct {
	EventID string `json:"event_id"`
	TS      int64  `json:"ts"`
}

type withheldRecord struct {
	Code   string `json:"code"`
	Reason string `json:"reason,omitempty"`
	Sender string `json:"sender"`
}

func (m *Machine) loadOutbound(ctx context.Context, room string) (*outboundSession, error) {
	if o, ok := m.outbound[room]; ok {
		return o, nil
	}
	o := &outboundSession{}
	ok, err := m.getJSON(ctx, KindOutboundGroup, room, o)
	if err != nil || !ok {
		return nil, err
	}
	if o.s, err = megolm.UnpickleOutboundSession(m.pkey, o.Pickle); err != nil {
		return nil, fmt.Errorf("e2ee: unpickle outbound session: %w", err)
	}
	m.outbound[room] = o
	return o, nil
}

func (m *Machine) putOutbound(ch *Changes, o *outboundSession) error {
	p, err := o.s.Pickle(m.pkey)
	if err != nil {
		return fmt.Errorf("e2ee: pickle outbound session: %w", err)
	}
	o.Pickle = p
	return putJSON(ch, KindOutboundGroup, o.RoomID, o)
}

func (m *Machine) loadInbound(ctx context.Context, sessionID string) (*inboundSession, error) {
	if s, ok := m.inbound[sessionID]; ok {
		return s, nil
	}
	s := &inboundSession{}
	ok, err := m.getJSON(ctx, KindInboundGroup, sessionID, s)
	if err != nil || !ok {
		return nil, err
	}
	if s.s, err = megolm.UnpickleInboundSession(m.pkey, s.Pickle); err != nil {
		return nil, fmt.Errorf("e2ee: unpickle inbound session: %w", err)
	}
	m.inbound[sessionID] = s
	return s, nil
}

func (m *Machine) putInbound(ch *Changes, s *inboundSession) error {
	p, err := s.s.Pickle(m.pkey)
	if err != nil {
		return fmt.Errorf("e2ee: pickle inbound session: %w", err)
	}
	s.Pickle = p
	m.inbound[s.SessionID] = s
	return putJSON(ch, KindInboundGroup, s.SessionID, s)
}

// shareDecision says whether a device gets the room key, or which withheld
// code it gets instead (A1b, B1).
func (m *Machine) shareDecision(u *userRecord, d *deviceRecord) (share bool, code string) {
	switch m.trustOf(u, d) {
	case TrustVerifiedIdentity, TrustCrossSignedPinned:
		return true, ""
	case TrustIdentityChanged:
		return false, WithheldUnverified
	}
	if !d.usable() {
		return false, WithheldBlacklisted
	}
	if m.policy.ShareWithNonCrossSigned {
		return true, ""
	}
	return false, WithheldUnverified
}

// Encrypt encrypts an event for room with the room's Megolm session and
// returns the m.room.encrypted content. It first shares the session with
// every member device the trust policy allows, queuing the to-device
// requests; send everything Outgoing returns before sending the event.
//
// Errors: *NotReadyError (send outgoing requests, acknowledge, retry),
// ErrRoomNotEncrypted, *EncryptionStateError, *SendBlockedError.
func (m *Machine) Encrypt(ctx context.Context, room, eventType string, content json.RawMessage) (json.RawMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out, err := m.encrypt(ctx, room, eventType, content)
	if err != nil {
		m.abort(ctx)
	}
	return out, err
}

func (m *Machine) encrypt(ctx context.Context, room, eventType string, content json.RawMessage) (json.RawMessage, error) {
	r, err := m.loadRoom(ctx, room)
	if err != nil {
		return nil, err
	}
	if !r.Encrypted {
		return nil, fmt.Errorf("e2ee: encrypt in %s: %w", room, ErrRoomNotEncrypted)
	}
	if r.Broken != "" {
		return nil, &EncryptionStateError{RoomID: room, Detail: r.Broken}
	}
	ch := &Changes{}
	o, err := m.shareRoomKey(ctx, ch, r)
	if err != nil {
		return nil, err
	}
	pt, err := json.Marshal(map[string]any{"type": eventType, "content": content, "room_id": room})
	if err != nil {
		return nil, fmt.Errorf("e2ee: encrypt: %w", err)
	}
	ct := o.s.Encrypt(pt)
	wire := map[string]any{
		"algorithm":  crosssign.AlgorithmMegolm,
		"sender_key": m.curve.String(),
		"device_id":  m.device.String(),
		"session_id": o.SessionID,
		"ciphertext": keys.EncodeBase64(ct),
	}
	// m.relates_to stays in the clear so servers can aggregate (spec).
	var c struct {
		RelatesTo json.RawMessage `json:"m.relates_to"`
	}
	if json.Unmarshal(content, &c) == nil && len(c.RelatesTo) > 0 {
		wire["m.relates_to"] = c.RelatesTo
	}
	if err := m.putOutbound(ch, o); err != nil {
		return nil, err
	}
	if err := m.putAccount(ch); err != nil {
		return nil, err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		return nil, fmt.Errorf("e2ee: encrypt: %w", err)
	}
	return json.Marshal(wire)
}

// needsRotation reports why the outbound session must be replaced: too old,
// too many messages, or a device it was shared with is no longer a member
// device we would share with (leave, removal, key change; A1 rule 2).
func (m *Machine) needsRotation(ctx context.Context, o *outboundSession, r *roomRecord) (bool, error) {
	now := m.now().UnixMilli()
	ms, msgs := clampRotation(r.RotationMs, r.RotationMsgs)
	if now-o.Created >= ms || int64(o.s.MessageIndex()) >= msgs || o.s.Exhausted() {
		return true, nil
	}
	if o.SharedHistory != r.SharedHistory {
		return true, nil // history visibility crossed the shared line (MSC4268)
	}
	for ud, sd := range o.SharedWith {
		user, dev, _ := cut(ud)
		if _, ok := r.Members[user]; !ok && user != m.user.String() {
			return true, nil
		}
		u, err := m.loadUser(ctx, user)
		if err != nil {
			return false, err
		}
		d := u.Devices[dev]
		if d == nil || d.Curve25519 != sd.Curve {
			return true, nil
		}
		if ok, _ := m.shareDecision(u, d); !ok {
			return true, nil
		}
	}
	return false, nil
}

func (m *Machine) shareRoomKey(ctx context.Context, ch *Changes, r *roomRecord) (*outboundSession, error) {
	members := make([]string, 0, len(r.Members)+1)
	for u := range r.Members {
		members = append(members, u)
	}
	if !slices.Contains(members, m.user.String()) {
		members = append(members, m.user.String())
	}
	slices.Sort(members)
	var blocked []string
	outdated := false
	users := make([]*userRecord, len(members))
	for i, name := range members {
		u, err := m.loadUser(ctx, name)
		if err != nil {
			return nil, err
		}
		if !u.Tracked {
			u.Tracked, u.Outdated = true, true
			u.Gen++
			if err := putJSON(ch, KindUser, name, u); err != nil {
				return nil, err
			}
		}
		if u.Outdated {
			outdated = true
		}
		if u.ChangePending && (u.WasVerified || !m.policy.AllowUnverifiedIdentityChange) {
			blocked = append(blocked, name)
		}
		users[i] = u
	}
	if len(blocked) > 0 {
		return nil, &SendBlockedError{RoomID: r.RoomID, Users: blocked}
	}
	if outdated {
		if err := m.planQuery(ctx, ch); err != nil {
			return nil, err
		}
		if err := m.putAccount(ch); err != nil {
			return nil, err
		}
		if err := m.store.Save(ctx, ch); err != nil {
			return nil, err
		}
		return nil, &NotReadyError{RoomID: r.RoomID, Waiting: "keys/query"}
	}
	o, err := m.loadOutbound(ctx, r.RoomID)
	if err != nil {
		return nil, err
	}
	if o != nil {
		rot, err := m.needsRotation(ctx, o, r)
		if err != nil {
			return nil, err
		}
		if rot {
			o = nil
		}
	}
	if o == nil {
		s, err := megolm.NewOutboundSession(m.rand)
		if err != nil {
			return nil, fmt.Errorf("e2ee: new megolm session: %w", err)
		}
		o = &outboundSession{RoomID: r.RoomID, SessionID: s.ID(), Created: m.now().UnixMilli(),
			SharedWith: map[string]sharedDevice{}, Withheld: map[string]string{}, SharedHistory: r.SharedHistory, s: s}
		m.outbound[r.RoomID] = o
		// Our own inbound copy, so we can read our own messages.
		in, err := megolm.NewInboundSession(s.SessionKey())
		if err != nil {
			return nil, err
		}
		if err := m.putInbound(ch, &inboundSession{SessionID: o.SessionID, RoomID: r.RoomID, SenderUser: m.user.String(),
			SenderDevice: m.device.String(), SenderCurve: m.curve.String(), SenderEd25519: m.ed.String(),
			Received: o.Created, SharedHistory: o.SharedHistory, s: in}); err != nil {
			return nil, err
		}
	}
	var give, claim []olmTarget
	withheld := map[string][]olmTarget{}
	now := m.now()
	for _, u := range users {
		devs := make([]string, 0, len(u.Devices))
		for dev := range u.Devices {
			devs = append(devs, dev)
		}
		slices.Sort(devs)
		for _, dev := range devs {
			d := u.Devices[dev]
			if u.UserID == m.user.String() && dev == m.device.String() {
				continue
			}
			key := u.UserID + "|" + dev
			if _, done := o.SharedWith[key]; done {
				continue
			}
			// Devices withheld earlier are decided again: one that became
			// cross-signed since gets the session from the current index
			// (nothing sent while it was withheld).
			t := olmTarget{u.UserID, d}
			share, code := m.shareDecision(u, d)
			if share {
				ss, err := m.loadOlm(ctx, d.Curve25519)
				if err != nil {
					return nil, err
				}
				switch {
				case len(ss) > 0:
					give = append(give, t)
					continue
				case now.Sub(m.noOlm[d.Curve25519]) >= NoOlmRetry:
					claim = append(claim, t)
					continue
				}
				code = WithheldNoOlm
			}
			if o.Withheld[key] != code {
				withheld[code] = append(withheld[code], t)
			}
		}
	}
	if len(claim) > 0 {
		if pend, err := m.pending(ctx, RequestKeysClaim); err != nil {
			return nil, err
		} else if len(pend) == 0 {
			if err := m.queueClaim(ctx, ch, claim, false); err != nil {
				return nil, err
			}
		}
		if err := m.putOutbound(ch, o); err != nil {
			return nil, err
		}
		if err := m.putAccount(ch); err != nil {
			return nil, err
		}
		if err := m.store.Save(ctx, ch); err != nil {
			return nil, err
		}
		return nil, &NotReadyError{RoomID: r.RoomID, Waiting: "keys/claim"}
	}
	if len(give) > 0 {
		sk := o.s.SessionKey()
		rk := map[string]any{
			"algorithm": crosssign.AlgorithmMegolm, "room_id": r.RoomID,
			"session_id": o.SessionID, "session_key": sk.String(),
		}
		if o.SharedHistory {
			rk["shared_history"] = true
		}
		c, err := json.Marshal(rk)
		if err != nil {
			return nil, err
		}
		contents := make([][]byte, len(give))
		for i := range give {
			contents[i] = c
		}
		enc, err := m.olmEncryptMany(ctx, ch, give, "m.room_key", contents)
		if err != nil {
			return nil, err
		}
		if _, err := m.queueRequest(ch, RequestSendToDevice, "m.room.encrypted", toDeviceBody(give, enc), nil); err != nil {
			return nil, err
		}
		for _, t := range give {
			o.SharedWith[t.user+"|"+t.d.DeviceID] = sharedDevice{Curve: t.d.Curve25519, Index: o.s.MessageIndex()}
		}
	}
	codes := make([]string, 0, len(withheld))
	for c := range withheld {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	for _, code := range codes {
		ts := withheld[code]
		msgs := map[string]map[string]any{}
		for _, t := range ts {
			o.Withheld[t.user+"|"+t.d.DeviceID] = code
			if msgs[t.user] == nil {
				msgs[t.user] = map[string]any{}
			}
			wc := map[string]any{"algorithm": crosssign.AlgorithmMegolm, "room_id": r.RoomID, "session_id": o.SessionID,
				"sender_key": m.curve.String(), "code": code, "reason": withheldReason(code), "from_device": m.device.String()}
			msgs[t.user][t.d.DeviceID] = wc
		}
		if _, err := m.queueRequest(ch, RequestSendToDevice, "m.room_key.withheld", map[string]any{"messages": msgs}, nil); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func withheldReason(code string) string {
	switch code {
	case WithheldUnverified:
		return "The sender only shares keys with cross-signed devices of trusted identities."
	case WithheldBlacklisted:
		return "The sender distrusts this device."
	case WithheldNoOlm:
		return "Unable to establish a secure channel."
	}
	return "Key withheld."
}

func cut(ud string) (string, string, bool) {
	for i := len(ud) - 1; i >= 0; i-- {
		if ud[i] == '|' {
			return ud[:i], ud[i+1:], true
		}
	}
	return ud, "", false
}

// ---- receiving keys ----

type roomKeyContent struct {
	Algorithm  string `json:"algorithm"`
	RoomID     string `json:"room_id"`
	SessionID  string `json:"session_id"`
	SessionKey string `json:"session_key"`
	// SharedHistory: MSC4268; anything but JSON true counts as false.
	SharedHistory json.RawMessage `json:"shared_history,omitempty"`
}

// roomKeyReceive stores an m.room_key received over Olm from device d of
// user u (bound by the Olm checks). B5 rules 1 and 3.
func (m *Machine) roomKeyReceive(ctx context.Context, ch *Changes, res *Result, u *userRecord, d *deviceRecord, content json.RawMessage) error {
	var c roomKeyContent
	if err := json.Unmarshal(content, &c); err != nil || c.Algorithm != crosssign.AlgorithmMegolm {
		res.reject(RejectRoomKeyInvalid, u.UserID, d.DeviceID, errors.New("e2ee: m.room_key malformed or not Megolm"))
		return nil
	}
	if _, err := id.ParseRoomID(c.RoomID); err != nil {
		res.reject(RejectRoomKeyInvalid, u.UserID, d.DeviceID, errors.New("e2ee: m.room_key room_id invalid"))
		return nil
	}
	sk, err := megolm.ParseSessionKey(c.SessionKey)
	if err != nil || sk.ID() != c.SessionID {
		res.reject(RejectRoomKeyInvalid, u.UserID, d.DeviceID, errors.New("e2ee: m.room_key session key invalid or does not match session_id"))
		return nil
	}
	in, err := megolm.NewInboundSession(sk)
	if err != nil {
		res.reject(RejectRoomKeyInvalid, u.UserID, d.DeviceID, err)
		return nil
	}
	old, err := m.loadInbound(ctx, c.SessionID)
	if err != nil {
		return err
	}
	rec := &inboundSession{SessionID: c.SessionID, RoomID: c.RoomID, SenderUser: u.UserID, SenderDevice: d.DeviceID,
		SenderCurve: d.Curve25519, SenderEd25519: d.Ed25519, Received: m.now().UnixMilli(),
		SharedHistory: string(c.SharedHistory) == "true", s: in}
	if old != nil {
		if old.RoomID != c.RoomID || (!old.Forwarded && !old.FromBackup && old.SenderCurve != d.Curve25519) {
			res.reject(RejectSessionOwnerConflict, u.UserID, d.DeviceID, fmt.Errorf("e2ee: m.room_key for session %s, which belongs to another device or room", c.SessionID))
			return nil
		}
		switch in.Compare(old.s) {
		case megolm.Unconnected:
			res.reject(RejectMegolmUnconnected, u.UserID, d.DeviceID, fmt.Errorf("e2ee: m.room_key for session %s is not connected to the stored copy", c.SessionID))
			return nil
		case megolm.Better:
		default:
			if old.Forwarded || old.FromBackup {
				// Same or worse ratchet, but an authenticated binding:
				// keep the ratchet, upgrade the provenance (A3 rule 3).
				merged, err := old.s.Merge(in)
				if err != nil {
					return nil
				}
				rec.s = merged
				break
			}
			return nil
		}
	}
	return m.putInbound(ch, rec)
}

type forwardContent struct {
	Algorithm  string   `json:"algorithm"`
	RoomID     string   `json:"room_id"`
	SessionID  string   `json:"session_id"`
	SessionKey string   `json:"session_key"`
	SenderKey  string   `json:"sender_key"`
	ClaimedEd  string   `json:"sender_claimed_ed25519_key"`
	Chain      []string `json:"forwarding_curve25519_key_chain"`
}

// forwardReceive accepts m.forwarded_room_key only as the answer to our own
// outstanding request, from our own cross-signed device that we asked
// (A3 rules 1-3, B5).
func (m *Machine) forwardReceive(ctx context.Context, ch *Changes, res *Result, u *userRecord, d *deviceRecord, content json.RawMessage) error {
	var c forwardContent
	if err := json.Unmarshal(content, &c); err != nil || c.Algorithm != crosssign.AlgorithmMegolm {
		res.reject(RejectRoomKeyInvalid, u.UserID, d.DeviceID, errors.New("e2ee: m.forwarded_room_key malformed"))
		return nil
	}
	if u.UserID != m.user.String() {
		res.reject(RejectForwardUntrusted, u.UserID, d.DeviceID, errors.New("e2ee: forwarded room keys are accepted only from our own devices"))
		return nil
	}
	if t := m.trustOf(u, d); t != TrustVerifiedIdentity && t != TrustCrossSignedPinned {
		res.reject(RejectForwardUntrusted, u.UserID, d.DeviceID, fmt.Errorf("e2ee: forwarded room key from our device %s, which is not cross-signed (%s)", d.DeviceID, t))
		return nil
	}
	var kr keyRequestRecord
	ok, err := m.getJSON(ctx, KindKeyRequest, c.RoomID+"|"+c.SessionID, &kr)
	if err != nil {
		return err
	}
	if !ok {
		res.reject(RejectUnrequestedForward, u.UserID, d.DeviceID, fmt.Errorf("e2ee: forwarded room key for session %s that we never requested", c.SessionID))
		return nil
	}
	if !slices.Contains(kr.Devices, d.DeviceID) {
		res.reject(RejectForwardUntrusted, u.UserID, d.DeviceID, errors.New("e2ee: forwarded room key from a device we did not ask"))
		return nil
	}
	ek, err := megolm.ParseExportedSessionKey(c.SessionKey)
	if err != nil || ek.ID() != c.SessionID {
		res.reject(RejectRoomKeyInvalid, u.UserID, d.DeviceID, errors.New("e2ee: forwarded session key invalid or does not match session_id"))
		return nil
	}
	in, err := megolm.ImportInboundSession(ek)
	if err != nil {
		res.reject(RejectRoomKeyInvalid, u.UserID, d.DeviceID, err)
		return nil
	}
	old, err := m.loadInbound(ctx, c.SessionID)
	if err != nil {
		return err
	}
	if old != nil {
		if old.RoomID != c.RoomID {
			res.reject(RejectSessionOwnerConflict, u.UserID, d.DeviceID, errors.New("e2ee: forwarded session belongs to another room"))
			return nil
		}
		switch in.Compare(old.s) {
		case megolm.Unconnected:
			res.reject(RejectMegolmUnconnected, u.UserID, d.DeviceID, fmt.Errorf("e2ee: forwarded copy of session %s is not connected to the stored one; kept the stored one", c.SessionID))
			return nil
		case megolm.Better:
			merged, err := old.s.Merge(in)
			if err != nil {
				return nil
			}
			// Keep the existing (possibly authenticated) binding.
			old.s = merged
			ch.Delete(KindKeyRequest, c.RoomID+"|"+c.SessionID)
			return m.putInbound(ch, old)
		default:
			ch.Delete(KindKeyRequest, c.RoomID+"|"+c.SessionID)
			return nil
		}
	}
	// New session: the sender binding is only claimed; bind it to a known
	// device so the session owner check on decryption has a user.
	ou, od, err := m.deviceByCurve(ctx, c.SenderKey)
	if err != nil {
		return err
	}
	if od == nil || od.Ed25519 != c.ClaimedEd {
		res.reject(RejectForwardUntrusted, u.UserID, d.DeviceID, errors.New("e2ee: forwarded room key names an original sender device we do not know"))
		return nil
	}
	ch.Delete(KindKeyRequest, c.RoomID+"|"+c.SessionID)
	return m.putInbound(ch, &inboundSession{SessionID: c.SessionID, RoomID: c.RoomID, SenderUser: ou.UserID, SenderDevice: od.DeviceID,
		SenderCurve: od.Curve25519, SenderEd25519: od.Ed25519, Forwarded: true, ForwardedBy: d.Curve25519,
		Received: m.now().UnixMilli(), s: in})
}

func (m *Machine) withheldReceive(ctx context.Context, res *Result, ev ToDeviceEvent) error {
	var c struct {
		RoomID    string `json:"room_id"`
		SessionID string `json:"session_id"`
		Code      string `json:"code"`
		Reason    string `json:"reason"`
	}
	if err := json.Unmarshal(ev.Content, &c); err != nil || c.SessionID == "" || len(c.Code) > 255 || len(c.Reason) > 1024 {
		return nil
	}
	// A hint only: never blocks a later genuine key (B12).
	ch := &Changes{}
	if err := putJSON(ch, KindWithheld, c.SessionID, withheldRecord{Code: c.Code, Reason: c.Reason, Sender: ev.Sender}); err != nil {
		return err
	}
	return m.store.Save(ctx, ch)
}

// ---- decryption ----

// Decrypt decrypts a room event. Plaintext events come back with
// TrustPlaintext, except message-like events in encrypted rooms, which fail
// with UTDUnencryptedInEncryptedRoom. Failures are *UTDError.
func (m *Machine) Decrypt(ctx context.Context, room string, ev Event) (*Decrypted, error) {
	out, errs, err := m.DecryptBatch(ctx, room, []Event{ev})
	if err != nil {
		return nil, err
	}
	return out[0], errs[0]
}

// DecryptBatch decrypts events of one room (a timeline or backlog page).
// It returns one result or *UTDError per event; the final error is for
// storage failures only. Signature and MAC checks run in parallel across
// sessions, and the replay table is written in one batch.
func (m *Machine) DecryptBatch(ctx context.Context, room string, evs []Event) ([]*Decrypted, []error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out, errs, err := m.decryptBatch(ctx, room, evs)
	if err != nil {
		m.abort(ctx)
	}
	return out, errs, err
}

func isMessageLike(ev Event) bool {
	if ev.StateKey != nil {
		return false
	}
	switch ev.Type {
	case "m.room.redaction":
		return false
	}
	return true
}

type decJob struct {
	i   int
	ev  Event
	sid string
	ct  []byte
	s   *inboundSession
	pt  []byte
	idx uint32
	err error
}

func (m *Machine) decryptBatch(ctx context.Context, room string, evs []Event) ([]*Decrypted, []error, error) {
	out := make([]*Decrypted, len(evs))
	errs := make([]error, len(evs))
	r, err := m.loadRoom(ctx, room)
	if err != nil {
		return nil, nil, err
	}
	var jobs []*decJob
	for i, ev := range evs {
		j, err := m.decryptPrepare(ctx, r, i, ev)
		if err != nil {
			return nil, nil, err
		}
		switch {
		case j.err != nil:
			errs[i] = j.err
		case j.s == nil:
			out[i] = &Decrypted{Event: ev, Provenance: Provenance{Trust: TrustPlaintext, SenderUser: ev.Sender}}
		default:
			jobs = append(jobs, j)
		}
	}
	// Decrypt: one goroutine per session (a session's caches are not safe
	// for concurrent use), sessions spread over all cores.
	groups := map[*inboundSession][]*decJob{}
	var order []*inboundSession
	for _, j := range jobs {
		if groups[j.s] == nil {
			order = append(order, j.s)
		}
		groups[j.s] = append(groups[j.s], j)
	}
	parallel(len(order), func(g int) {
		for _, j := range groups[order[g]] {
			j.pt, j.idx, j.err = j.s.s.Decrypt(j.ct)
		}
	})
	ch := &Changes{}
	fresh := map[string]string{} // replay entries written by this batch
	prov := map[*inboundSession]Provenance{}
	wins := map[string]*megolmWindow{}
	for _, j := range jobs {
		d, err := m.decryptFinish(ctx, ch, fresh, prov, wins, room, j)
		if err != nil {
			var u *UTDError
			if !errors.As(err, &u) {
				return nil, nil, err
			}
		}
		out[j.i], errs[j.i] = d, err
	}
	for sid, w := range wins {
		if w.dirty {
			if err := putJSON(ch, KindMegolmWindow, sid, w); err != nil {
				return nil, nil, err
			}
		}
	}
	if !ch.IsEmpty() {
		if err := m.store.Save(ctx, ch); err != nil {
			return nil, nil, fmt.Errorf("e2ee: decrypt: %w", err)
		}
	}
	return out, errs, nil
}

// decryptPrepare does the checks before any cryptography: algorithm,
// session lookup by session_id only, and the session's room and owner
// (B2 rule 2). A job with neither err nor s is a plaintext event to pass on.
func (m *Machine) decryptPrepare(ctx context.Context, r *roomRecord, i int, ev Event) (*decJob, error) {
	j := &decJob{i: i, ev: ev}
	if ev.Type != "m.room.encrypted" {
		if r.Encrypted && isMessageLike(ev) {
			j.err = utd(UTDUnencryptedInEncryptedRoom, "", "type "+ev.Type, nil)
		}
		return j, nil
	}
	if len(ev.Content) > maxEventSize {
		j.err = utd(UTDMalformed, "", "event too large", nil)
		return j, nil
	}
	var alg struct {
		Algorithm string `json:"algorithm"`
	}
	if err := json.Unmarshal(ev.Content, &alg); err != nil {
		j.err = utd(UTDMalformed, "", "", err)
		return j, nil
	}
	if alg.Algorithm != crosssign.AlgorithmMegolm {
		j.err = utd(UTDOlmInRoom, "", "algorithm "+alg.Algorithm, nil)
		return j, nil
	}
	var c struct {
		SessionID  string `json:"session_id"`
		Ciphertext string `json:"ciphertext"`
	}
	if err := json.Unmarshal(ev.Content, &c); err != nil {
		j.err = utd(UTDMalformed, "", "", err)
		return j, nil
	}
	j.sid = c.SessionID
	ct, err := keys.DecodeBase64Lenient(c.Ciphertext)
	if err != nil || len(ct) > megolm.MaxMessageSize {
		j.err = utd(UTDMalformed, c.SessionID, "ciphertext", err)
		return j, nil
	}
	j.ct = ct
	s, err := m.loadInbound(ctx, c.SessionID)
	if err != nil {
		return nil, err
	}
	if s == nil {
		if err := m.requestKey(ctx, r.RoomID, c.SessionID); err != nil {
			return nil, err
		}
		var w withheldRecord
		if ok, err := m.getJSON(ctx, KindWithheld, c.SessionID, &w); err != nil {
			return nil, err
		} else if ok {
			e := utd(UTDWithheld, c.SessionID, "reported by "+w.Sender+", unauthenticated", nil)
			e.Code = w.Code
			j.err = e
			return j, nil
		}
		j.err = utd(UTDNoSession, c.SessionID, "", nil)
		return j, nil
	}
	if s.RoomID != r.RoomID {
		j.err = utd(UTDRoomMismatch, c.SessionID, "the session belongs to another room", nil)
		return j, nil
	}
	if s.SenderUser != ev.Sender {
		j.err = utd(UTDSenderMismatch, c.SessionID, fmt.Sprintf("session owned by %s, event claims %s", s.SenderUser, ev.Sender), nil)
		return j, nil
	}
	j.s = s
	return j, nil
}

// decryptFinish checks the plaintext and the replay table (B4) and attaches
// the provenance.
func (m *Machine) decryptFinish(ctx context.Context, ch *Changes, fresh map[string]string, prov map[*inboundSession]Provenance, wins map[string]*megolmWindow, room string, j *decJob) (*Decrypted, error) {
	if j.err != nil {
		if errors.Is(j.err, megolm.ErrUnknownMessageIndex) {
			if err := m.requestKey(ctx, room, j.sid); err != nil {
				return nil, err
			}
			return nil, utd(UTDUnknownIndex, j.sid, "", j.err)
		}
		return nil, utd(UTDBadCiphertext, j.sid, "", j.err)
	}
	var p struct {
		Type    string          `json:"type"`
		Content json.RawMessage `json:"content"`
		RoomID  string          `json:"room_id"`
	}
	if err := json.Unmarshal(j.pt, &p); err != nil || p.Type == "" {
		return nil, utd(UTDMalformed, j.sid, "plaintext", err)
	}
	if p.RoomID != room {
		return nil, utd(UTDRoomMismatch, j.sid, "the plaintext names another room", nil)
	}
	ikey := j.sid + "|" + strconv.FormatUint(uint64(j.idx), 10)
	first, ok := fresh[ikey]
	if !ok {
		var seen indexRecord
		found, err := m.getJSON(ctx, KindMegolmIndex, ikey, &seen)
		if err != nil {
			return nil, err
		}
		if found {
			first, ok = seen.EventID, true
		}
	}
	if ok && first != j.ev.EventID {
		return nil, utd(UTDReplay, j.sid, fmt.Sprintf("index %d was first seen in event %s", j.idx, first), nil)
	}
	if !ok {
		fresh[ikey] = j.ev.EventID
		if err := putJSON(ch, KindMegolmIndex, ikey, indexRecord{EventID: j.ev.EventID, TS: j.ev.OriginServerTS}); err != nil {
			return nil, err
		}
	}
	pv, ok := prov[j.s]
	if !ok {
		var err error
		if pv, err = m.provenance(ctx, j.s); err != nil {
			return nil, err
		}
		prov[j.s] = pv
	}
	pv.Index = j.idx
	var err error
	if pv.Timestamp, err = m.checkTimestamp(ctx, wins, j.sid, j.idx, j.ev.OriginServerTS); err != nil {
		return nil, err
	}
	if (pv.Trust == TrustUnverifiedDevice || pv.Trust == TrustUnknownDevice) && !m.policy.ShowNonCrossSigned {
		return nil, utd(UTDInsecureDeviceHidden, j.sid, pv.Warning, nil)
	}
	out := j.ev
	out.Type = p.Type
	out.Content = p.Content
	return &Decrypted{Event: out, Provenance: pv}, nil
}

func (m *Machine) provenance(ctx context.Context, s *inboundSession) (Provenance, error) {
	p := Provenance{SenderUser: s.SenderUser, SenderDevice: s.SenderDevice, SenderCurve: s.SenderCurve,
		SenderEd25519: s.SenderEd25519, SessionID: s.SessionID}
	if s.BundleFrom != "" {
		p.Trust = TrustForwardedOrBackup
		p.SharedBy = s.BundleFrom
		p.Warning = "the key for this message was shared by " + s.BundleFrom + " in a room-key bundle: only their word vouches for its sender"
		return p, nil
	}
	if s.Forwarded || s.FromBackup {
		p.Trust = TrustForwardedOrBackup
		p.Warning = "the key for this message was forwarded or restored from backup: its authenticity cannot be guaranteed"
		return p, nil
	}
	if s.SenderUser == m.user.String() && s.SenderCurve == m.curve.String() {
		p.Trust = TrustVerifiedIdentity // our own device
		return p, nil
	}
	u, err := m.loadUser(ctx, s.SenderUser)
	if err != nil {
		return p, err
	}
	d := u.Devices[s.SenderDevice]
	if d != nil && d.Curve25519 != s.SenderCurve {
		d = nil
	}
	p.Trust = m.trustOf(u, d)
	switch p.Trust {
	case TrustUnknownDevice:
		p.Warning = "sent by a device that is not in its owner's device list"
	case TrustUnverifiedDevice:
		p.Warning = "sent by a device its owner has not cross-signed"
	case TrustIdentityChanged:
		p.Warning = "the sender's identity changed since it was pinned"
	}
	return p, nil
}

// ---- key requests (B6, A3) ----

type keyRequestRecord struct {
	RequestID string   `json:"request_id"`
	Devices   []string `json:"devices"`
	Created   int64    `json:"created"`
}

// requestKey asks our own cross-signed devices (and only those) for a
// session we lack, once.
func (m *Machine) requestKey(ctx context.Context, room, sessionID string) error {
	key := room + "|" + sessionID
	var kr keyRequestRecord
	if ok, err := m.getJSON(ctx, KindKeyRequest, key, &kr); err != nil || ok {
		return err
	}
	u, err := m.loadUser(ctx, m.user.String())
	if err != nil {
		return err
	}
	var devs []string
	msgs := map[string]any{}
	for dev, d := range u.Devices {
		if dev == m.device.String() {
			continue
		}
		if t := m.trustOf(u, d); t == TrustVerifiedIdentity || t == TrustCrossSignedPinned {
			devs = append(devs, dev)
		}
	}
	if len(devs) == 0 {
		return nil
	}
	slices.Sort(devs)
	ch := &Changes{}
	kr = keyRequestRecord{RequestID: m.newRequestID(), Devices: devs, Created: m.now().UnixMilli()}
	body := map[string]any{"action": "request", "requesting_device_id": m.device.String(), "request_id": kr.RequestID,
		"body": map[string]any{"algorithm": crosssign.AlgorithmMegolm, "room_id": room, "session_id": sessionID}}
	for _, dev := range devs {
		msgs[dev] = body
	}
	if _, err := m.queueRequest(ch, RequestSendToDevice, "m.room_key_request", map[string]any{"messages": map[string]any{m.user.String(): msgs}}, nil); err != nil {
		return err
	}
	if err := putJSON(ch, KindKeyRequest, key, kr); err != nil {
		return err
	}
	if err := m.putAccount(ch); err != nil {
		return err
	}
	return m.store.Save(ctx, ch)
}

// keyRequestReceive answers m.room_key_request only for our own
// cross-signed devices, with an Olm-encrypted forward (B6 rules 1-2).
func (m *Machine) keyRequestReceive(ctx context.Context, res *Result, ev ToDeviceEvent) error {
	var c struct {
		Action    string `json:"action"`
		Requester string `json:"requesting_device_id"`
		RequestID string `json:"request_id"`
		Body      struct {
			Algorithm string `json:"algorithm"`
			RoomID    string `json:"room_id"`
			SessionID string `json:"session_id"`
		} `json:"body"`
	}
	if err := json.Unmarshal(ev.Content, &c); err != nil || c.Action != "request" {
		return nil
	}
	if ev.Sender != m.user.String() {
		res.reject(RejectKeyRequestUntrusted, ev.Sender, c.Requester, errors.New("e2ee: key request from another user; keys are re-shared only with our own devices"))
		return nil
	}
	u, err := m.loadUser(ctx, ev.Sender)
	if err != nil {
		return err
	}
	d := u.Devices[c.Requester]
	if t := m.trustOf(u, d); t != TrustVerifiedIdentity && t != TrustCrossSignedPinned || c.Requester == m.device.String() {
		res.reject(RejectKeyRequestUntrusted, ev.Sender, c.Requester, fmt.Errorf("e2ee: key request from our device %q, which is not cross-signed", c.Requester))
		return nil
	}
	ch := &Changes{}
	if c.RequestID != "" {
		dup, err := m.seenRequest(ctx, ch, ev.Type, ev.Sender, c.Requester, c.RequestID)
		if err != nil {
			return err
		}
		if dup {
			res.reject(RejectDuplicateRequest, ev.Sender, c.Requester, errors.New("e2ee: m.room_key_request with a request_id already processed: dropped"))
			return nil
		}
	}
	s, err := m.loadInbound(ctx, c.Body.SessionID)
	if err != nil || s == nil || s.RoomID != c.Body.RoomID {
		if err == nil {
			err = m.saveSeen(ctx, ch)
		}
		return err
	}
	ek, err := s.s.Export(s.s.FirstKnownIndex())
	if err != nil {
		return m.saveSeen(ctx, ch)
	}
	chain := []string{}
	if s.ForwardedBy != "" {
		chain = append(chain, s.ForwardedBy)
	}
	content := map[string]any{"algorithm": crosssign.AlgorithmMegolm, "room_id": s.RoomID, "session_id": s.SessionID,
		"session_key": ek.String(), "sender_key": s.SenderCurve, "sender_claimed_ed25519_key": s.SenderEd25519,
		"forwarding_curve25519_key_chain": chain}
	t := olmTarget{u.UserID, d}
	ss, err := m.loadOlm(ctx, d.Curve25519)
	if err != nil {
		return err
	}
	if len(ss) == 0 {
		if err := m.holdOlm(ctx, ch, t, "m.forwarded_room_key", content); err != nil {
			return err
		}
		if err := m.queueClaim(ctx, ch, []olmTarget{t}, false); err != nil {
			return err
		}
	} else {
		b, _ := json.Marshal(content)
		out, err := m.olmEncryptMany(ctx, ch, []olmTarget{t}, "m.forwarded_room_key", [][]byte{b})
		if err != nil {
			return err
		}
		if _, err := m.queueRequest(ch, RequestSendToDevice, "m.room.encrypted", toDeviceBody([]olmTarget{t}, out), nil); err != nil {
			return err
		}
	}
	if err := m.putAccount(ch); err != nil {
		return err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return err
	}
	return nil
}

// MaxSessionSpan is the longest time between two events of one Megolm
// session that is taken as plausible (B4 rule 2): a week's rotation (the
// spec's default rotation_period_ms, and our sending maximum) plus a day.
const MaxSessionSpan = 8 * 24 * time.Hour

// TimestampSkew is the clock difference tolerated by the timestamp checks.
const TimestampSkew = 5 * time.Minute

// megolmWindow (KindMegolmWindow, key session id) is what the timestamp
// plausibility check remembers of a session's events: the earliest and
// latest origin_server_ts, and the ts of the lowest and highest index.
type megolmWindow struct {
	MinTS    int64  `json:"min_ts"`
	MaxTS    int64  `json:"max_ts"`
	FirstIdx uint32 `json:"first_idx"`
	FirstTS  int64  `json:"first_ts"`
	LastIdx  uint32 `json:"last_idx"`
	LastTS   int64  `json:"last_ts"`
	dirty    bool
}

// checkTimestamp flags an event whose origin_server_ts (set by the server)
// is implausible for its session: in the future, further than
// MaxSessionSpan from the session's other events, or ordered against the
// message indices (B4 rule 2). Informational: the event still decrypts.
// Only plausible events widen the session's window.
func (m *Machine) checkTimestamp(ctx context.Context, wins map[string]*megolmWindow, sid string, idx uint32, ts int64) (TimestampFlag, error) {
	skew, span := TimestampSkew.Milliseconds(), MaxSessionSpan.Milliseconds()
	if ts > m.now().UnixMilli()+skew {
		return TimestampInFuture, nil
	}
	w, ok := wins[sid]
	if !ok {
		w = &megolmWindow{}
		found, err := m.getJSON(ctx, KindMegolmWindow, sid, w)
		if err != nil {
			return 0, err
		}
		if !found {
			w = &megolmWindow{MinTS: ts, MaxTS: ts, FirstIdx: idx, FirstTS: ts, LastIdx: idx, LastTS: ts, dirty: true}
		}
		wins[sid] = w
		if !found {
			return TimestampPlausible, nil
		}
	}
	switch {
	case ts < w.MaxTS-span || ts > w.MinTS+span:
		return TimestampOutsideSessionWindow, nil
	case idx > w.FirstIdx && ts < w.FirstTS-skew, idx < w.LastIdx && ts > w.LastTS+skew:
		return TimestampOutOfOrder, nil
	}
	if ts < w.MinTS || ts > w.MaxTS {
		w.MinTS, w.MaxTS, w.dirty = min(w.MinTS, ts), max(w.MaxTS, ts), true
	}
	if idx < w.FirstIdx {
		w.FirstIdx, w.FirstTS, w.dirty = idx, ts, true
	}
	if idx > w.LastIdx {
		w.LastIdx, w.LastTS, w.dirty = idx, ts, true
	}
	return TimestampPlausible, nil
}

// saveSeen saves a step that only recorded a processed request ID.
func (m *Machine) saveSeen(ctx context.Context, ch *Changes) error {
	if ch.IsEmpty() {
		return nil
	}
	if err := m.putAccount(ch); err != nil {
		return err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return err
	}
	return nil
}

var _ = time.Second
