package e2ee

import (
	"context"
	"errors"
	"fmt"

	"myelin/canonicaljson"
	"myelin/crypto/crosssign"
	"myelin/crypto/megolm"
	"myelin/keys"
	"myelin/signing"
)

// ExportedRoomKey is one session in the key-export / backup format
// (https://spec.matrix.org/v1.16/client-server-api/#key-export-format).
// SessionKey is secret.
type ExportedRoomKey struct {
	Algorithm         string            `json:"algorithm"`
	RoomID            string            `json:"room_id"`
	SenderKey         string            `json:"sender_key"`
	SessionID         string            `json:"session_id"`
	SessionKey        string            `json:"session_key"`
	SenderClaimedKeys map[string]string `json:"sender_claimed_keys"`
	ForwardingChain   []string          `json:"forwarding_curve25519_key_chain"`
}

// ExportRoomKeys returns every inbound session at its first known index,
// for key export and server-side backup (issue 6 encrypts them).
func (m *Machine) ExportRoomKeys(ctx context.Context) ([]ExportedRoomKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	recs, err := m.store.List(ctx, KindInboundGroup, "")
	if err != nil {
		return nil, err
	}
	out := make([]ExportedRoomKey, 0, len(recs))
	for _, rec := range recs {
		s, err := m.loadInbound(ctx, rec.Key)
		if err != nil {
			return nil, err
		}
		ek, err := s.s.Export(s.s.FirstKnownIndex())
		if err != nil {
			return nil, err
		}
		chain := []string{}
		if s.ForwardedBy != "" {
			chain = append(chain, s.ForwardedBy)
		}
		out = append(out, ExportedRoomKey{Algorithm: crosssign.AlgorithmMegolm, RoomID: s.RoomID, SenderKey: s.SenderCurve,
			SessionID: s.SessionID, SessionKey: ek.String(), SenderClaimedKeys: map[string]string{"ed25519": s.SenderEd25519},
			ForwardingChain: chain})
	}
	return out, nil
}

// ImportRoomKeys imports sessions from a key export or a backup. Imported
// sessions carry no authenticity (TrustForwardedOrBackup); a copy never
// replaces or rebinds a stored session unless it is connected and starts
// earlier (then only the ratchet is merged, B5). The sender must be a device
// we know (so that the session owner check on decryption has a user).
func (m *Machine) ImportRoomKeys(ctx context.Context, keys []ExportedRoomKey) (imported int, res *Result, err error) {
	return m.importKeys(ctx, keys, false)
}

// ImportAuthenticatedBackupKeys imports sessions restored from our own key
// backup whose entries carried a valid authenticated MAC (MSC4048, checked by
// e2ee/recovery under the backup private key, which the server does not
// have). Such an entry was written by one of our own devices from a session it
// received over Olm, so the session keeps its original provenance: decryption
// rates it by the sender device's trust, as if the m.room_key had arrived
// here. An entry with a forwarding chain was itself a forward and stays
// TrustForwardedOrBackup. Pass only entries that recovery reported as
// authenticated; everything else goes through [Machine.ImportRoomKeys].
func (m *Machine) ImportAuthenticatedBackupKeys(ctx context.Context, keys []ExportedRoomKey) (imported int, res *Result, err error) {
	return m.importKeys(ctx, keys, true)
}

func (m *Machine) importKeys(ctx context.Context, keys []ExportedRoomKey, authenticated bool) (imported int, res *Result, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res = &Result{}
	for _, k := range keys {
		ok, err := m.importOne(ctx, res, k, "", authenticated && len(k.ForwardingChain) == 0)
		if err != nil {
			m.abort(ctx)
			return imported, res, err
		}
		if ok {
			imported++
		}
	}
	return imported, res, nil
}

// importOne imports one session; bundleFrom names the user whose room-key
// bundle carried it ("" for exports and backups).
//
// authenticated marks a session from an authenticated entry of our own
// backup: it keeps the original sender's provenance (no FromBackup flag).
func (m *Machine) importOne(ctx context.Context, res *Result, k ExportedRoomKey, bundleFrom string, authenticated bool) (bool, error) {
	if k.Algorithm != crosssign.AlgorithmMegolm {
		res.reject(RejectRoomKeyInvalid, "", "", fmt.Errorf("e2ee: import: algorithm %q", k.Algorithm))
		return false, nil
	}
	ek, err := megolm.ParseExportedSessionKey(k.SessionKey)
	if err != nil || ek.ID() != k.SessionID {
		res.reject(RejectRoomKeyInvalid, "", "", errors.New("e2ee: import: session key invalid or does not match session_id"))
		return false, nil
	}
	in, err := megolm.ImportInboundSession(ek)
	if err != nil {
		res.reject(RejectRoomKeyInvalid, "", "", err)
		return false, nil
	}
	ch := &Changes{}
	old, err := m.loadInbound(ctx, k.SessionID)
	if err != nil {
		return false, err
	}
	if old != nil {
		if old.RoomID != k.RoomID {
			res.reject(RejectSessionOwnerConflict, "", "", errors.New("e2ee: import: session belongs to another room"))
			return false, nil
		}
		switch in.Compare(old.s) {
		case megolm.Unconnected:
			res.reject(RejectMegolmUnconnected, "", "", fmt.Errorf("e2ee: import: copy of session %s is not connected to the stored one; kept the stored one", k.SessionID))
			return false, nil
		case megolm.Better:
			merged, err := old.s.Merge(in)
			if err != nil {
				return false, nil
			}
			old.s = merged
			if err := m.putInbound(ch, old); err != nil {
				return false, err
			}
		default:
			return false, nil
		}
	} else {
		u, d, err := m.deviceByCurve(ctx, k.SenderKey)
		if err != nil {
			return false, err
		}
		if d == nil || d.Ed25519 != k.SenderClaimedKeys["ed25519"] {
			res.reject(RejectUnknownSenderDevice, "", "", errors.New("e2ee: import: the session's sender device is unknown"))
			return false, nil
		}
		if err := m.putInbound(ch, &inboundSession{SessionID: k.SessionID, RoomID: k.RoomID, SenderUser: u.UserID,
			SenderDevice: d.DeviceID, SenderCurve: d.Curve25519, SenderEd25519: d.Ed25519, FromBackup: !authenticated || bundleFrom != "",
			BundleFrom: bundleFrom, Received: m.now().UnixMilli(), s: in}); err != nil {
			return false, err
		}
	}
	if err := m.store.Save(ctx, ch); err != nil {
		return false, err
	}
	return true, nil
}

// SignBackupAuthData adds this device's signature (ed25519:<device ID>) to a
// key-backup version's auth_data, keeping the signatures already there (our
// master key's). Other devices of ours trust a backup version only when
// auth_data carries a valid signature from our master key or one of our own
// cross-signed devices (e2ee/recovery), so both are added at creation. The
// object must have exactly the auth_data shape of
// m.megolm_backup.v1.curve25519-aes-sha2 (public_key and signatures), so that
// the device key signs nothing else through this method.
func (m *Machine) SignBackupAuthData(authData []byte) ([]byte, error) {
	fields, err := canonicaljson.ParseObject(authData)
	if err != nil {
		return nil, fmt.Errorf("e2ee: sign backup auth_data: %w", err)
	}
	for k := range fields {
		if k != "public_key" && k != "signatures" {
			return nil, fmt.Errorf("e2ee: sign backup auth_data: unexpected field %q", k)
		}
	}
	if pk, ok := fields["public_key"].(string); !ok {
		return nil, errors.New("e2ee: sign backup auth_data: no public_key")
	} else if _, err := keys.ParseCurve25519PublicKey(pk); err != nil {
		return nil, fmt.Errorf("e2ee: sign backup auth_data: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return signing.SignFields(fields, m.user.String(), signing.Ed25519+":"+m.device.String(), m.acct)
}
