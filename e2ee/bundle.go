package e2ee

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Room-key bundles (MSC4268, spec v1.19 "history sharing"), receiver side:
// threat model B6 rules 4 and 5.

// MaxBundleSize bounds a downloaded room-key bundle (ciphertext bytes).
const MaxBundleSize = 16 << 20

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
	var b struct {
		RoomKeys []ExportedRoomKey `json:"room_keys"`
	}
	if err := json.Unmarshal(plain, &b); err != nil {
		res.reject(RejectMalformed, inviter, "", err)
		return 0, res, fmt.Errorf("e2ee: room-key bundle: %w", err)
	}
	for _, k := range b.RoomKeys {
		if k.RoomID != room {
			res.reject(RejectRoomKeyInvalid, inviter, "", fmt.Errorf("e2ee: room-key bundle for %s carries a key of another room", room))
			continue
		}
		ok, err := m.importOne(ctx, res, k, inviter)
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
