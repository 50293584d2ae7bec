package recovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"myelin/canonicaljson"
	"myelin/crypto/backup"
	"myelin/crypto/megolm"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// Size bounds for server responses this package parses.
const (
	// MaxVersionResponseSize bounds a GET /room_keys/version body.
	MaxVersionResponseSize = 64 << 10
	// MaxRestoreBodySize bounds a GET /room_keys/keys body. Larger backups
	// are restored room by room (RestoreRoom).
	MaxRestoreBodySize = 128 << 20
	// MaxRestoreSessions bounds the entries one Restore call decrypts.
	MaxRestoreSessions = 200_000
	// MaxEntrySize bounds one KeyBackupData object.
	MaxEntrySize = backup.MaxSessionDataSize + 1024
	// MaxIDLength bounds room and session IDs in backup bodies.
	MaxIDLength = 255
	// MaxForwardingChain bounds forwarding_curve25519_key_chain.
	MaxForwardingChain = 64
)

// MegolmAlgorithm is the algorithm of the sessions this package backs up.
const MegolmAlgorithm = "m.megolm.v1.aes-sha2"

// Signer signs with one of our devices' Ed25519 key. *keys.Ed25519SecretKey
// and *olm.Account implement it.
type Signer interface {
	Sign(msg []byte) keys.Ed25519Signature
}

// Device is one of our own devices as the e2ee machine judged it from
// /keys/query (crosssign.Evaluate). Only devices with CrossSigned set (signed
// by our self-signing key, which chains to our trusted master key, or
// verified) and not Dehydrated count for anything in this package.
type Device struct {
	DeviceID    id.DeviceID
	Ed25519     keys.Ed25519PublicKey
	Curve25519  keys.Curve25519PublicKey
	CrossSigned bool
	Dehydrated  bool
}

func (d *Device) trusted() bool {
	return d != nil && d.CrossSigned && !d.Dehydrated && !d.DeviceID.IsZero() && !d.Ed25519.IsZero()
}

// TrustedVersion is a backup version whose auth_data was signed by our
// trusted master key or by one of our own cross-signed devices. Only
// TrustBackupVersion and NewBackupVersion.Trusted make one; uploads need one.
type TrustedVersion struct {
	// Version is the server's version string.
	Version string
	// PublicKey is auth_data.public_key.
	PublicKey keys.Curve25519PublicKey
	// SignedBy is the key ID of the trusted signature that verified
	// ("ed25519:<master key>" or "ed25519:<device ID>").
	SignedBy string
	// Count and ETag are the server's metadata, informational only.
	Count int64
	ETag  string
	// Changed is set when a previous trusted version was given and this one
	// has another version string or public key: the caller must alert
	// (backup_version_changed) and ask before uploading to it (B7 rule 1).
	Changed bool

	trusted bool
}

// NewBackupVersion is a backup version we created, before the server
// assigned its version string.
type NewBackupVersion struct {
	// Key is the new backup decryption key. Store it in secret storage
	// (backup.SecretName) and show it to nobody else.
	Key *backup.DecryptionKey
	// AuthData is the signed auth_data.
	AuthData json.RawMessage
	// RequestBody is the body of POST /room_keys/version.
	RequestBody json.RawMessage
}

// Trusted returns the TrustedVersion for the version string the server
// returned from POST /room_keys/version.
func (n *NewBackupVersion) Trusted(version string) *TrustedVersion {
	return &TrustedVersion{Version: version, PublicKey: n.Key.PublicKey(), SignedBy: "self-created", trusted: true}
}

// CreateBackupVersion generates a backup key and signs its auth_data with
// our master key (cross-signing) and our device key, so that each of our
// devices can later check it (TrustBackupVersion). master and device must
// both be given.
func CreateBackupVersion(rand io.Reader, user id.UserID, master *keys.Ed25519SecretKey, deviceID id.DeviceID, device Signer) (*NewBackupVersion, error) {
	if user.IsZero() || master == nil || deviceID.IsZero() || device == nil {
		return nil, fmt.Errorf("recovery: create backup version: %w", ErrInvalidArgument)
	}
	k, err := backup.GenerateDecryptionKey(rand)
	if err != nil {
		return nil, fmt.Errorf("recovery: create backup version: %w", err)
	}
	ad, err := signAuthData(user, k.PublicKey(), master, deviceID, device)
	if err != nil {
		k.Wipe()
		return nil, err
	}
	body, err := canonicaljson.Marshal(map[string]any{"algorithm": backup.Algorithm, "auth_data": json.RawMessage(ad)})
	if err != nil {
		k.Wipe()
		return nil, fmt.Errorf("recovery: create backup version: %w", err)
	}
	return &NewBackupVersion{Key: k, AuthData: ad, RequestBody: body}, nil
}

func signAuthData(user id.UserID, pub keys.Curve25519PublicKey, master *keys.Ed25519SecretKey, deviceID id.DeviceID, device Signer) ([]byte, error) {
	// The signed bytes are the canonical JSON of auth_data without
	// "signatures" (spec appendix "Signing JSON").
	unsigned, err := canonicaljson.Marshal(map[string]any{"public_key": pub.String()})
	if err != nil {
		return nil, fmt.Errorf("recovery: sign auth_data: %w", err)
	}
	mpub := master.PublicKey()
	sigs := map[string]string{
		"ed25519:" + mpub.String():     master.Sign(unsigned).String(),
		"ed25519:" + deviceID.String(): device.Sign(unsigned).String(),
	}
	out, err := canonicaljson.Marshal(map[string]any{
		"public_key": pub.String(),
		"signatures": map[string]any{user.String(): sigs},
	})
	if err != nil {
		return nil, fmt.Errorf("recovery: sign auth_data: %w", err)
	}
	return out, nil
}

// VersionInput is what TrustBackupVersion judges.
type VersionInput struct {
	// UserID is our user.
	UserID id.UserID
	// Response is the GET /room_keys/version (or /room_keys/version/{v})
	// body as the server sent it.
	Response []byte
	// MasterKey is our trusted master key (we hold its private key, pinned it
	// or verified it); zero if none.
	MasterKey keys.Ed25519PublicKey
	// Devices are our own devices; only cross-signed, non-dehydrated ones
	// are trusted signers. Include this device if it is cross-signed.
	Devices []Device
	// Key is the backup decryption key we hold (from secret storage or the
	// user); nil if none. If given, it must belong to the version.
	Key *backup.DecryptionKey
	// Previous is the version we trusted before, if any.
	Previous *TrustedVersion
}

type versionResponse struct {
	Algorithm string          `json:"algorithm"`
	AuthData  json.RawMessage `json:"auth_data"`
	Version   string          `json:"version"`
	Count     int64           `json:"count"`
	ETag      string          `json:"etag"`
}

// TrustBackupVersion decides whether to trust the server's current backup
// version: only when auth_data carries a valid signature by our trusted
// master key or by one of our own cross-signed devices, and, if we hold a
// decryption key, only when it belongs to auth_data.public_key. The server's
// word (the version merely being there) is never enough (threat model B7
// rule 1, A5 rule 2). Refusals are *UntrustedBackupVersionError.
func TrustBackupVersion(in VersionInput) (*TrustedVersion, error) {
	refuse := func(v string, r UntrustReason, cause error) (*TrustedVersion, error) {
		return nil, &UntrustedBackupVersionError{Version: v, Reason: r, Cause: cause}
	}
	if in.UserID.IsZero() {
		return nil, fmt.Errorf("recovery: trust backup version: %w", ErrInvalidArgument)
	}
	if len(in.Response) > MaxVersionResponseSize {
		return refuse("", ReasonMalformed, ErrTooLarge)
	}
	var r versionResponse
	if err := json.Unmarshal(in.Response, &r); err != nil {
		return refuse("", ReasonMalformed, fmt.Errorf("%w: %v", ErrMalformed, err))
	}
	if r.Version == "" || len(r.Version) > MaxIDLength {
		return refuse(r.Version, ReasonMalformed, ErrMalformed)
	}
	if r.Algorithm != backup.Algorithm {
		return refuse(r.Version, ReasonUnsupportedAlgorithm, nil)
	}
	ad, err := backup.ParseAuthData(r.AuthData)
	if err != nil {
		return refuse(r.Version, ReasonMalformed, err)
	}
	obj, err := signing.Parse(r.AuthData)
	if err != nil {
		return refuse(r.Version, ReasonMalformed, err)
	}
	// Trusted signers by key ID. The master key comes first and a device
	// can never take its key ID (a device ID equal to the master key's
	// base64 is the 2022 confusion, A2).
	signers := map[string]keys.Ed25519PublicKey{}
	if !in.MasterKey.IsZero() {
		signers["ed25519:"+in.MasterKey.String()] = in.MasterKey
	}
	for i := range in.Devices {
		d := &in.Devices[i]
		if !d.trusted() {
			continue
		}
		kid := "ed25519:" + d.DeviceID.String()
		if _, taken := signers[kid]; !taken {
			signers[kid] = d.Ed25519
		}
	}
	if len(signers) == 0 {
		return refuse(r.Version, ReasonNoTrustRoot, nil)
	}
	ids := obj.KeyIDs(in.UserID.String())
	if len(ids) == 0 {
		return refuse(r.Version, ReasonUnsigned, nil)
	}
	sort.Strings(ids)
	signedBy := ""
	var bad error
	for _, kid := range ids {
		pk, ok := signers[kid]
		if !ok {
			continue
		}
		if err := obj.Verify(in.UserID.String(), kid, pk); err != nil {
			bad = errors.Join(bad, err)
			continue
		}
		signedBy = kid
		break
	}
	if signedBy == "" {
		if bad != nil {
			return refuse(r.Version, ReasonBadSignature, bad)
		}
		return refuse(r.Version, ReasonUnknownSigner, nil)
	}
	if in.Key != nil && !ad.Matches(in.Key) {
		return refuse(r.Version, ReasonKeyMismatch, nil)
	}
	v := &TrustedVersion{
		Version: r.Version, PublicKey: ad.PublicKey, SignedBy: signedBy,
		Count: r.Count, ETag: r.ETag, trusted: true,
	}
	if p := in.Previous; p != nil && (p.Version != v.Version || p.PublicKey != v.PublicKey) {
		v.Changed = true
	}
	return v, nil
}

// SessionExport is an inbound Megolm session as the e2ee machine exports it
// for backup.
type SessionExport struct {
	RoomID    id.RoomID
	SessionID string
	// SenderKey is the Curve25519 key of the device that shared the session.
	SenderKey keys.Curve25519PublicKey
	// SenderClaimedKeys is {"ed25519": <b64>} as bound when the session
	// arrived.
	SenderClaimedKeys map[string]string
	// SessionKey is the exported session key (export format 0x01), base64.
	SessionKey string
	// ForwardingChain is forwarding_curve25519_key_chain (empty for keys
	// received directly from the sender).
	ForwardingChain []string
	// FirstKnownIndex is the first index the exported key decrypts.
	FirstKnownIndex uint32
	// IsVerified is the server-side hint (the server's replacement rule
	// prefers verified entries); it is never trusted on restore.
	IsVerified bool
}

// KeyBackupData is one entry of PUT /room_keys/keys
// (rooms.<room>.sessions.<session>).
type KeyBackupData struct {
	FirstMessageIndex uint32              `json:"first_message_index"`
	ForwardedCount    int                 `json:"forwarded_count"`
	IsVerified        bool                `json:"is_verified"`
	SessionData       *backup.SessionData `json:"session_data"`
}

// backedUpSession is BackedUpSessionData (the plaintext of an entry).
type backedUpSession struct {
	Algorithm         string            `json:"algorithm"`
	ForwardingChain   []string          `json:"forwarding_curve25519_key_chain"`
	SenderKey         string            `json:"sender_key"`
	SenderClaimedKeys map[string]string `json:"sender_claimed_keys"`
	SessionKey        string            `json:"session_key"`
}

// EncryptSession turns a session export into its backup entry for this
// trusted version, with the MSC4048 MAC (mac is the backup key's MAC key,
// DecryptionKey.MACKey) filed under user, so that our own entries can later
// be told from entries anyone holding only the public key wrote.
func (v *TrustedVersion) EncryptSession(rand io.Reader, user id.UserID, mac *backup.MACKey, s *SessionExport) (*KeyBackupData, error) {
	if v == nil || !v.trusted {
		return nil, &UntrustedBackupVersionError{Reason: ReasonNoTrustRoot}
	}
	if mac == nil || s == nil || user.IsZero() || s.RoomID.IsZero() {
		return nil, fmt.Errorf("recovery: encrypt session: %w", ErrInvalidArgument)
	}
	sk, err := megolm.ParseExportedSessionKey(s.SessionKey)
	if err != nil {
		return nil, fmt.Errorf("recovery: encrypt session: %w", err)
	}
	if sk.ID() != s.SessionID {
		return nil, fmt.Errorf("recovery: encrypt session: %w", ErrSessionIDMismatch)
	}
	if sk.Index() != s.FirstKnownIndex {
		return nil, fmt.Errorf("recovery: encrypt session: first known index differs from the key's: %w", ErrInvalidArgument)
	}
	if _, err := keys.ParseEd25519PublicKey(s.SenderClaimedKeys["ed25519"]); err != nil {
		return nil, fmt.Errorf("recovery: encrypt session: sender_claimed_keys.ed25519: %w", err)
	}
	if s.SenderKey.IsZero() || len(s.ForwardingChain) > MaxForwardingChain {
		return nil, fmt.Errorf("recovery: encrypt session: %w", ErrInvalidArgument)
	}
	chain := s.ForwardingChain
	if chain == nil {
		chain = []string{}
	}
	pt, err := json.Marshal(backedUpSession{
		Algorithm: MegolmAlgorithm, ForwardingChain: chain, SenderKey: s.SenderKey.String(),
		SenderClaimedKeys: s.SenderClaimedKeys, SessionKey: s.SessionKey,
	})
	if err != nil {
		return nil, fmt.Errorf("recovery: encrypt session: %w", err)
	}
	sd, err := backup.EncryptAuthenticated(rand, v.PublicKey, mac, user, pt)
	clear(pt)
	if err != nil {
		return nil, fmt.Errorf("recovery: encrypt session: %w", err)
	}
	return &KeyBackupData{
		FirstMessageIndex: s.FirstKnownIndex, ForwardedCount: len(s.ForwardingChain),
		IsVerified: s.IsVerified, SessionData: sd,
	}, nil
}

// UploadEntry places one KeyBackupData in an upload.
type UploadEntry struct {
	RoomID    id.RoomID
	SessionID string
	Data      *KeyBackupData
}

// UploadBody builds the body of PUT /room_keys/keys?version=<v>:
// {"rooms": {<room>: {"sessions": {<session>: KeyBackupData}}}}.
func UploadBody(entries []UploadEntry) ([]byte, error) {
	type roomKeys struct {
		Sessions map[string]*KeyBackupData `json:"sessions"`
	}
	rooms := map[string]*roomKeys{}
	for _, e := range entries {
		if e.RoomID.IsZero() || e.SessionID == "" || e.Data == nil {
			return nil, fmt.Errorf("recovery: upload body: %w", ErrInvalidArgument)
		}
		r := rooms[e.RoomID.String()]
		if r == nil {
			r = &roomKeys{Sessions: map[string]*KeyBackupData{}}
			rooms[e.RoomID.String()] = r
		}
		r.Sessions[e.SessionID] = e.Data
	}
	return json.Marshal(map[string]any{"rooms": rooms})
}
