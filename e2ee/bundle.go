package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"myelin/crypto/crosssign"
)

// Room-key bundles (MSC4268, spec v1.19 "history sharing"): threat model
// B6 rules 3 (sender side) and 4-5 (receiver side).

// MaxBundleSize bounds a downloaded room-key bundle (ciphertext bytes).
const MaxBundleSize = 16 << 20

// MaxBundleKeys bounds the sessions imported from one room-key bundle.
const MaxBundleKeys = 20000

// parseBundle decodes a decrypted room-key bundle (size-bounded by
// MaxBundleSize before decryption).
func parseBundle(plain []byte) ([]ExportedRoomKey, error) {
	if len(plain) > MaxBundleSize {
		return nil, errors.New("e2ee: room-key bundle too large")
	}
	var b struct {
		RoomKeys []ExportedRoomKey `json:"room_keys"`
	}
	if err := json.Unmarshal(plain, &b); err != nil {
		return nil, fmt.Errorf("e2ee: room-key bundle: %w", err)
	}
	if len(b.RoomKeys) > MaxBundleKeys {
		return nil, fmt.Errorf("e2ee: room-key bundle of %d sessions, more than %d", len(b.RoomKeys), MaxBundleKeys)
	}
	return b.RoomKeys, nil
}

// MaxPendingBundles bounds the bundles stored but not yet imported.
const MaxPendingBundles = 256

type bundleContent struct {
	RoomID string         `json:"room_id"`
	File   *EncryptedFile `json:"file"`
}

// bundleRecord is KindRoomKeyBundle. File is the sealed EncryptedFile
// (it holds the AES key).
type bundleRecord struct {
	RoomID       string `json:"room_id"`
	Sender       string `json:"sender"`
	SenderDevice string `json:"sender_device"`
	File         []byte `json:"file"`
	Received     int64  `json:"received"`
}

// bundleReceive stores an m.room_key_bundle that arrived over Olm (A4
// rule 3) from a cross-signed device with sender_device_keys (B6 rule 4a).
// Nothing is downloaded: the application asks for the file only after
// accepting an invite from the sender (B6 rule 5).
func (m *Machine) bundleReceive(ctx context.Context, ch *Changes, res *Result, u *userRecord, d *deviceRecord, pt *olmPlaintext) error {
	if len(pt.SenderDeviceKeys) == 0 {
		res.reject(RejectBundleUntrusted, u.UserID, d.DeviceID, errors.New("e2ee: m.room_key_bundle without sender_device_keys"))
		return nil
	}
	if t := m.trustOf(u, d); t != TrustVerifiedIdentity && t != TrustCrossSignedPinned {
		res.reject(RejectBundleUntrusted, u.UserID, d.DeviceID, fmt.Errorf("e2ee: m.room_key_bundle from device %s, which is not cross-signed by a trusted identity (%s)", d.DeviceID, t))
		return nil
	}
	var c bundleContent
	if err := json.Unmarshal(pt.Content, &c); err != nil || c.RoomID == "" || c.File == nil {
		res.reject(RejectMalformed, u.UserID, d.DeviceID, errors.New("e2ee: m.room_key_bundle malformed"))
		return nil
	}
	key := c.RoomID + "|" + u.UserID
	if _, err := m.store.Get(ctx, KindRoomKeyBundle, key); errors.Is(err, ErrNotFound) {
		n, err := m.store.List(ctx, KindRoomKeyBundle, "")
		if err != nil {
			return err
		}
		if len(n) >= MaxPendingBundles {
			res.reject(RejectMalformed, u.UserID, d.DeviceID, errors.New("e2ee: too many room-key bundles waiting"))
			return nil
		}
	} else if err != nil {
		return err
	}
	f, err := json.Marshal(c.File)
	if err != nil {
		return err
	}
	sealed, err := m.sealRecord(KindRoomKeyBundle, key, f)
	if err != nil {
		return err
	}
	// A newer bundle of the same user for the same room replaces the older.
	return putJSON(ch, KindRoomKeyBundle, key, bundleRecord{RoomID: c.RoomID, Sender: u.UserID, SenderDevice: d.DeviceID,
		File: sealed, Received: m.now().UnixMilli()})
}

func (m *Machine) loadBundle(ctx context.Context, room, inviter string) (*EncryptedFile, error) {
	key := room + "|" + inviter
	var rec bundleRecord
	ok, err := m.getJSON(ctx, KindRoomKeyBundle, key, &rec)
	if err != nil {
		return nil, err
	}
	if !ok || rec.RoomID != room || rec.Sender != inviter {
		return nil, fmt.Errorf("e2ee: no room-key bundle from %s for %s: %w", inviter, room, ErrNotFound)
	}
	b, err := m.openRecord(KindRoomKeyBundle, key, rec.File)
	if err != nil {
		return nil, err
	}
	var f EncryptedFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("e2ee: room-key bundle record: %w", err)
	}
	return &f, nil
}

// RoomKeyBundle returns the encrypted file of the room-key bundle that
// inviter sent us for room (over Olm, from a cross-signed device), or an
// error wrapping ErrNotFound. Call it only after the user accepted an
// invite to room from inviter, then download the file and pass it to
// ImportRoomKeyBundle (threat model B6 rules 4a and 5: bundles of anyone
// else are never downloaded).
func (m *Machine) RoomKeyBundle(ctx context.Context, room, inviter string) (*EncryptedFile, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.loadBundle(ctx, room, inviter)
}

// ImportRoomKeyBundle imports the downloaded bundle (ciphertext) that
// inviter sent for room. The ciphertext must match the sha256 named in the
// m.room_key_bundle (else RejectBundleHashMismatch and an error wrapping
// ErrAttachmentHash); only keys for room are imported, each tagged with
// inviter (Provenance.SharedBy, TrustForwardedOrBackup) and never
// replacing or rebinding a stored session (B5). The stored bundle is
// forgotten once imported; until then a restart can retry.
func (m *Machine) ImportRoomKeyBundle(ctx context.Context, room, inviter string, ciphertext []byte) (imported int, res *Result, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res = &Result{}
	f, err := m.loadBundle(ctx, room, inviter)
	if err != nil {
		return 0, res, err
	}
	plain, err := DecryptAttachment(ciphertext, f, MaxBundleSize)
	if err != nil {
		code := RejectMalformed
		if errors.Is(err, ErrAttachmentHash) {
			code = RejectBundleHashMismatch
		}
		res.reject(code, inviter, "", err)
		return 0, res, fmt.Errorf("e2ee: room-key bundle: %w", err)
	}
	roomKeys, err := parseBundle(plain)
	if err != nil {
		res.reject(RejectMalformed, inviter, "", err)
		return 0, res, err
	}
	for _, k := range roomKeys {
		if k.RoomID != room {
			res.reject(RejectRoomKeyInvalid, inviter, "", fmt.Errorf("e2ee: room-key bundle for %s carries a key of another room", room))
			continue
		}
		ok, err := m.importOne(ctx, res, k, inviter, false)
		if err != nil {
			m.abort(ctx)
			return imported, res, err
		}
		if ok {
			imported++
		}
	}
	ch := &Changes{}
	ch.Delete(KindRoomKeyBundle, room+"|"+inviter)
	if err := m.store.Save(ctx, ch); err != nil {
		return imported, res, err
	}
	return imported, res, nil
}

// BuildRoomKeyBundle encrypts the room-key bundle (MSC4268) of room for a
// user we are about to invite: only sessions whose creator marked them
// shared_history in its m.room_key, or our own sessions created while the
// room's history was shared; never forwarded, backed-up or bundled ones
// (so a server lying about history_visibility to us cannot widen what
// others' sessions reveal: threat model B6 rule 3). Upload ciphertext, set
// file.URL, then call ShareRoomKeyBundle. n is the number of sessions.
func (m *Machine) BuildRoomKeyBundle(ctx context.Context, room string) (ciphertext []byte, file *EncryptedFile, n int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	recs, err := m.store.List(ctx, KindInboundGroup, "")
	if err != nil {
		return nil, nil, 0, err
	}
	keys := []ExportedRoomKey{}
	for _, rec := range recs {
		s, err := m.loadInbound(ctx, rec.Key)
		if err != nil {
			return nil, nil, 0, err
		}
		if s.RoomID != room || !s.SharedHistory || s.Forwarded || s.FromBackup || s.BundleFrom != "" {
			continue
		}
		ek, err := s.s.Export(s.s.FirstKnownIndex())
		if err != nil {
			return nil, nil, 0, err
		}
		keys = append(keys, ExportedRoomKey{Algorithm: crosssign.AlgorithmMegolm, RoomID: s.RoomID, SenderKey: s.SenderCurve,
			SessionID: s.SessionID, SessionKey: ek.String(), SenderClaimedKeys: map[string]string{"ed25519": s.SenderEd25519}})
	}
	plain, err := json.Marshal(map[string]any{"room_keys": keys, "withheld": []any{}})
	if err != nil {
		return nil, nil, 0, err
	}
	ct, f, err := EncryptAttachment(m.rand, plain)
	if err != nil {
		return nil, nil, 0, err
	}
	return ct, f, len(keys), nil
}

// ShareRoomKeyBundle sends m.room_key_bundle for room (file as uploaded)
// over Olm to invitee's devices that are cross-signed by a pinned or
// verified identity, whatever the trust policy (MSC4268 requires it, and
// history is worth more than one message: B6 rule 3); other devices get
// nothing. It returns ErrNotReady (NotReadyError) while invitee's devices
// are being queried, and SendBlockedError while an identity change of
// invitee is not acknowledged. Devices without an Olm session get the
// event once a one-time key is claimed (see Outgoing).
func (m *Machine) ShareRoomKeyBundle(ctx context.Context, room, invitee string, file *EncryptedFile) (devices int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if file == nil || file.URL == "" {
		return 0, errors.New("e2ee: share room-key bundle: the file has no url (upload it first)")
	}
	n, err := m.shareBundle(ctx, room, invitee, file)
	if err != nil {
		m.abort(ctx)
	}
	return n, err
}

func (m *Machine) shareBundle(ctx context.Context, room, invitee string, file *EncryptedFile) (int, error) {
	u, err := m.loadUser(ctx, invitee)
	if err != nil {
		return 0, err
	}
	ch := &Changes{}
	if !u.Tracked || u.Outdated {
		if !u.Tracked {
			u.Tracked, u.Outdated = true, true
			u.Gen++
			if err := putJSON(ch, KindUser, invitee, u); err != nil {
				return 0, err
			}
		}
		if err := m.planQuery(ctx, ch); err != nil {
			return 0, err
		}
		if err := m.putAccount(ch); err != nil {
			return 0, err
		}
		if err := m.store.Save(ctx, ch); err != nil {
			return 0, err
		}
		return 0, &NotReadyError{RoomID: room, Waiting: "keys/query"}
	}
	if u.ChangePending {
		return 0, &SendBlockedError{RoomID: room, Users: []string{invitee}}
	}
	content := bundleContent{RoomID: room, File: file}
	c, err := json.Marshal(content)
	if err != nil {
		return 0, err
	}
	devs := make([]string, 0, len(u.Devices))
	for dev := range u.Devices {
		devs = append(devs, dev)
	}
	slices.Sort(devs)
	var give, claim []olmTarget
	for _, dev := range devs {
		d := u.Devices[dev]
		if invitee == m.user.String() && dev == m.device.String() {
			continue
		}
		if t := m.trustOf(u, d); t != TrustVerifiedIdentity && t != TrustCrossSignedPinned {
			continue
		}
		ss, err := m.loadOlm(ctx, d.Curve25519)
		if err != nil {
			return 0, err
		}
		if len(ss) > 0 {
			give = append(give, olmTarget{invitee, d})
			continue
		}
		if err := m.holdOlm(ctx, ch, olmTarget{invitee, d}, "m.room_key_bundle", json.RawMessage(c)); err != nil {
			return 0, err
		}
		claim = append(claim, olmTarget{invitee, d})
	}
	if len(give) > 0 {
		contents := make([][]byte, len(give))
		for i := range give {
			contents[i] = c
		}
		enc, err := m.olmEncryptMany(ctx, ch, give, "m.room_key_bundle", contents)
		if err != nil {
			return 0, err
		}
		if _, err := m.queueRequest(ch, RequestSendToDevice, "m.room.encrypted", toDeviceBody(give, enc), nil); err != nil {
			return 0, err
		}
	}
	if len(claim) > 0 {
		if err := m.queueClaim(ctx, ch, claim, false); err != nil {
			return 0, err
		}
	}
	if err := m.putAccount(ch); err != nil {
		return 0, err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		return 0, fmt.Errorf("e2ee: share room-key bundle: %w", err)
	}
	return len(give) + len(claim), nil
}
