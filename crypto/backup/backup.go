package backup

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"myelin/crypto/internal/cipher"
	"myelin/crypto/internal/recoverykey"
	"myelin/id"
	"myelin/keys"
)

// Algorithm is the backup algorithm this package implements.
const Algorithm = "m.megolm_backup.v1.curve25519-aes-sha2"

// SecretName is the secret-storage name of the backup decryption key.
const SecretName = "m.megolm_backup.v1"

// MACSecretName is the secret-storage name of the MSC4048 backup MAC key
// (unstable name).
const MACSecretName = "org.matrix.msc4048.mac"

// MACKeyInfo is the HKDF info that derives the MSC4048 backup MAC key from
// the decryption key.
const MACKeyInfo = "MATRIX_BACKUP_MAC_KEY"

// SignatureKeyID is the key under session_data.signatures.<user id> that
// holds the MSC4048 MAC (unstable name).
const SignatureKeyID = "org.matrix.msc4048.hmac-sha-256:backup_mac_key"

// KeySize is the size of the decryption key and of the MAC key.
const KeySize = 32

// MaxPlaintextSize bounds what Encrypt accepts and what Decrypt decrypts. A
// backed-up Megolm session is well under 4 KiB, even with a long forwarding
// chain.
const MaxPlaintextSize = 64 << 10

// MaxSessionDataSize bounds the session_data JSON that ParseSessionData
// accepts.
const MaxSessionDataSize = 128 << 10

// Provenance says whether a decrypted entry is known to come from a holder of
// the backup key.
type Provenance int

const (
	// Unauthenticated entries could have been written by anyone who knows
	// the backup's public key, the server included. Keys restored from them
	// must be treated as of unknown origin.
	Unauthenticated Provenance = iota
	// Authenticated entries carry a valid MSC4048 MAC: they were written by
	// a holder of the backup decryption key (or its MAC key).
	Authenticated
)

// String names the provenance.
func (p Provenance) String() string {
	switch p {
	case Unauthenticated:
		return "unauthenticated"
	case Authenticated:
		return "authenticated"
	}
	return fmt.Sprintf("Provenance(%d)", int(p))
}

var (
	// ErrBadMAC reports a v1 (empty-string) MAC that does not match: the
	// entry was not made for this key.
	ErrBadMAC = errors.New("backup: MAC mismatch")
	// ErrBadAuthenticationMAC reports an MSC4048 MAC that is present but
	// wrong: the entry claims to come from the user and does not.
	ErrBadAuthenticationMAC = errors.New("backup: MSC4048 MAC mismatch")
	// ErrUnsupportedFields reports session_data with fields this package
	// cannot include in the MSC4048 MAC, on an entry that carries one.
	ErrUnsupportedFields = errors.New("backup: unexpected session_data fields on an authenticated entry")
	// ErrMalformed reports session data that does not have the expected
	// shape, encoding or size.
	ErrMalformed = errors.New("backup: malformed session data")
	// ErrDecrypt reports a ciphertext that does not decrypt (bad padding or
	// length).
	ErrDecrypt = errors.New("backup: decryption failed")
	// ErrInvalidRecoveryKey reports text that is not a recovery key.
	ErrInvalidRecoveryKey = errors.New("backup: invalid recovery key")
)

// DecryptionKey is the backup's Curve25519 private key. Use it through a
// pointer.
type DecryptionKey struct {
	_  [0]func()
	sk *keys.Curve25519SecretKey
}

// GenerateDecryptionKey reads 32 bytes from rand as a new key.
func GenerateDecryptionKey(rand io.Reader) (*DecryptionKey, error) {
	sk, err := keys.GenerateCurve25519SecretKey(rand)
	if err != nil {
		return nil, fmt.Errorf("backup: generate key: %w", err)
	}
	return &DecryptionKey{sk: sk}, nil
}

// NewDecryptionKey copies a raw 32-byte private key.
func NewDecryptionKey(b []byte) (*DecryptionKey, error) {
	sk, err := keys.NewCurve25519SecretKey(b)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	return &DecryptionKey{sk: sk}, nil
}

// ParseRecoveryKey parses the text form of the key (the spec's key
// representation, shared with secret storage).
func ParseRecoveryKey(s string) (*DecryptionKey, error) {
	b, err := recoverykey.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("backup: %w: %w", ErrInvalidRecoveryKey, err)
	}
	defer clear(b[:])
	return NewDecryptionKey(b[:])
}

// ParseSecret decodes the key from its secret-storage text (base64, padded
// or not). Before using a key received this way, check that its public key
// is the trusted backup's (threat model A5).
func ParseSecret(s []byte) (*DecryptionKey, error) {
	if len(s) > 64 {
		return nil, fmt.Errorf("backup: secret: %w", ErrMalformed)
	}
	b, err := keys.DecodeBase64Lenient(string(s))
	if err != nil || len(b) != KeySize {
		clear(b)
		return nil, fmt.Errorf("backup: secret: %w", ErrMalformed)
	}
	defer clear(b)
	return NewDecryptionKey(b)
}

// RecoveryKey returns the text form to show the user.
func (k *DecryptionKey) RecoveryKey() string {
	var b [KeySize]byte
	copy(b[:], k.sk.Bytes())
	defer clear(b[:])
	return recoverykey.Encode(&b)
}

// Secret returns the secret-storage form: unpadded base64 of the key.
func (k *DecryptionKey) Secret() []byte {
	b := k.sk.Bytes()
	defer clear(b)
	return []byte(keys.EncodeBase64(b))
}

// PublicKey returns the backup's public key (auth_data.public_key).
func (k *DecryptionKey) PublicKey() keys.Curve25519PublicKey { return k.sk.PublicKey() }

// Bytes returns a copy of the raw private key, for persistence only.
func (k *DecryptionKey) Bytes() []byte { return k.sk.Bytes() }

// Equal reports in constant time whether k and o are the same key.
func (k *DecryptionKey) Equal(o *DecryptionKey) bool { return k.sk.Equal(o.sk) }

// Wipe clears the key.
func (k *DecryptionKey) Wipe() { k.sk.Wipe() }

// String is redacted; it names the public key only.
func (k *DecryptionKey) String() string {
	return "backup.DecryptionKey(REDACTED, public " + k.sk.PublicKey().String() + ")"
}

// GoString is redacted.
func (k *DecryptionKey) GoString() string { return k.String() }

// Format prints the redacted form for every verb.
func (k *DecryptionKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, k.String()) }

// MACKey derives the MSC4048 backup MAC key.
func (k *DecryptionKey) MACKey() *MACKey {
	priv := k.sk.Bytes()
	defer clear(priv)
	out, err := hkdf.Key(sha256.New, priv, nil, MACKeyInfo, KeySize)
	if err != nil {
		panic("backup: internal error: " + err.Error())
	}
	m := new(MACKey)
	copy(m.b[:], out)
	clear(out)
	return m
}

// MACKey is the MSC4048 backup MAC key. Use it through a pointer.
type MACKey struct {
	_ [0]func()
	b [KeySize]byte
}

// NewMACKey copies a raw 32-byte MAC key (as shared under [MACSecretName]).
func NewMACKey(b []byte) (*MACKey, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("backup: MAC key of %d bytes: %w", len(b), ErrMalformed)
	}
	m := new(MACKey)
	copy(m.b[:], b)
	return m, nil
}

// Bytes returns a copy of the raw key, for persistence only.
func (m *MACKey) Bytes() []byte { b := m.b; return b[:] }

// Equal reports in constant time whether m and o are the same key.
func (m *MACKey) Equal(o *MACKey) bool { return subtle.ConstantTimeCompare(m.b[:], o.b[:]) == 1 }

// Wipe clears the key.
func (m *MACKey) Wipe() { clear(m.b[:]) }

// String is redacted.
func (m *MACKey) String() string { return "backup.MACKey(REDACTED)" }

// GoString is redacted.
func (m *MACKey) GoString() string { return m.String() }

// Format prints the redacted form for every verb.
func (m *MACKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, m.String()) }

// SessionData is the session_data of a backed-up key: base64 strings as
// found in the JSON (padded input is kept as is, since the MSC4048 MAC is
// over the text).
type SessionData struct {
	Ephemeral  string `json:"ephemeral"`
	Ciphertext string `json:"ciphertext"`
	MAC        string `json:"mac"`
	// Signatures holds the MSC4048 MAC, under
	// Signatures[user ID][SignatureKeyID].
	Signatures map[string]map[string]string `json:"signatures,omitempty"`

	// extra records fields other than the above and "unsigned", which the
	// MSC4048 MAC would have to cover.
	extra bool
}

// ParseSessionData parses session_data JSON within [MaxSessionDataSize].
func ParseSessionData(b []byte) (*SessionData, error) {
	if len(b) > MaxSessionDataSize {
		return nil, fmt.Errorf("backup: session_data of %d bytes: %w", len(b), ErrMalformed)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, fmt.Errorf("backup: session_data: %w", ErrMalformed)
	}
	var sd SessionData
	if err := json.Unmarshal(b, &sd); err != nil {
		return nil, fmt.Errorf("backup: session_data: %w", ErrMalformed)
	}
	for name := range fields {
		switch name {
		case "ephemeral", "ciphertext", "mac", "signatures", "unsigned":
		default:
			sd.extra = true
		}
	}
	return &sd, nil
}

// Encrypt encrypts plaintext (the BackedUpSessionData JSON) for the backup
// public key pub, byte for byte as libolm's olm_pk_encrypt: it reads exactly
// 32 bytes from rand for the ephemeral key. The entry is unauthenticated.
func Encrypt(rand io.Reader, pub keys.Curve25519PublicKey, plaintext []byte) (*SessionData, error) {
	if len(plaintext) > MaxPlaintextSize {
		return nil, fmt.Errorf("backup: encrypt: plaintext of %d bytes: %w", len(plaintext), ErrMalformed)
	}
	eph, err := keys.GenerateCurve25519SecretKey(rand)
	if err != nil {
		return nil, fmt.Errorf("backup: encrypt: %w", err)
	}
	defer eph.Wipe()
	shared, err := eph.SharedSecret(pub)
	if err != nil {
		return nil, fmt.Errorf("backup: encrypt: %w", err)
	}
	k := cipher.DeriveKeys(shared[:], "")
	clear(shared[:])
	defer k.Wipe()
	ct := k.Encrypt(nil, plaintext)
	mac := k.MAC(nil) // over the EMPTY string: libolm's bug, kept for compatibility
	return &SessionData{
		Ephemeral:  eph.PublicKey().String(),
		Ciphertext: keys.EncodeBase64(ct),
		MAC:        keys.EncodeBase64(mac[:]),
	}, nil
}

// EncryptAuthenticated is [Encrypt] plus the MSC4048 MAC under mac, filed
// under userID (the backup owner).
func EncryptAuthenticated(rand io.Reader, pub keys.Curve25519PublicKey, mac *MACKey, userID id.UserID, plaintext []byte) (*SessionData, error) {
	if userID.IsZero() {
		return nil, fmt.Errorf("backup: encrypt: empty user ID: %w", ErrMalformed)
	}
	sd, err := Encrypt(rand, pub, plaintext)
	if err != nil {
		return nil, err
	}
	tag := mac.sum(sd)
	sd.Signatures = map[string]map[string]string{userID.String(): {SignatureKeyID: keys.EncodeBase64(tag[:])}}
	return sd, nil
}

// canonical returns the canonical JSON of the MAC'd fields. Their values
// have been checked to be base64 text, which needs no JSON escaping, and
// the keys are in sorted order, so this is the canonical encoding.
func (sd *SessionData) canonical() []byte {
	b := make([]byte, 0, 48+len(sd.Ciphertext)+len(sd.Ephemeral)+len(sd.MAC))
	b = append(b, `{"ciphertext":"`...)
	b = append(b, sd.Ciphertext...)
	b = append(b, `","ephemeral":"`...)
	b = append(b, sd.Ephemeral...)
	b = append(b, `","mac":"`...)
	b = append(b, sd.MAC...)
	b = append(b, `"}`...)
	return b
}

func (m *MACKey) sum(sd *SessionData) [sha256.Size]byte {
	h := hmac.New(sha256.New, m.b[:])
	h.Write(sd.canonical())
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// Decrypted is a decrypted backup entry.
type Decrypted struct {
	// Plaintext is the BackedUpSessionData JSON.
	Plaintext []byte
	// Provenance says whether the entry was written by a key holder.
	Provenance Provenance
}

// Decrypt decrypts a backup entry of userID's backup. When the entry
// carries an MSC4048 MAC for userID it is checked first, in constant time;
// a wrong one refuses the entry ([ErrBadAuthenticationMAC]). Then the v1 MAC
// is checked, and only then is the ciphertext decrypted. An entry without
// an MSC4048 MAC decrypts with [Unauthenticated] provenance.
func (k *DecryptionKey) Decrypt(userID id.UserID, sd *SessionData) (*Decrypted, error) {
	eph, err := keys.ParseCurve25519PublicKey(trimPad(sd.Ephemeral))
	if err != nil {
		return nil, fmt.Errorf("backup: decrypt: ephemeral: %w", ErrMalformed)
	}
	if len(sd.Ciphertext) > 2*MaxPlaintextSize {
		return nil, fmt.Errorf("backup: decrypt: ciphertext too long: %w", ErrMalformed)
	}
	ct, err := keys.DecodeBase64Lenient(sd.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("backup: decrypt: ciphertext: %w", ErrMalformed)
	}
	if len(sd.MAC) > 12 {
		return nil, fmt.Errorf("backup: decrypt: mac: %w", ErrMalformed)
	}
	v1mac, err := keys.DecodeBase64Lenient(sd.MAC)
	if err != nil || len(v1mac) != cipher.MACSize {
		return nil, fmt.Errorf("backup: decrypt: mac: %w", ErrMalformed)
	}

	prov := Unauthenticated
	if tagText, ok := sd.Signatures[userID.String()][SignatureKeyID]; ok && !userID.IsZero() {
		if sd.extra {
			return nil, ErrUnsupportedFields
		}
		if len(tagText) > 44 {
			return nil, fmt.Errorf("backup: decrypt: MSC4048 mac: %w", ErrMalformed)
		}
		tag, err := keys.DecodeBase64Lenient(tagText)
		if err != nil || len(tag) != sha256.Size {
			return nil, fmt.Errorf("backup: decrypt: MSC4048 mac: %w", ErrMalformed)
		}
		mk := k.MACKey()
		want := mk.sum(sd)
		mk.Wipe()
		if !hmac.Equal(want[:], tag) {
			return nil, ErrBadAuthenticationMAC
		}
		prov = Authenticated
	}

	shared, err := k.sk.SharedSecret(eph)
	if err != nil {
		return nil, fmt.Errorf("backup: decrypt: %w", err)
	}
	ck := cipher.DeriveKeys(shared[:], "")
	clear(shared[:])
	defer ck.Wipe()
	if err := ck.VerifyMAC(nil, v1mac); err != nil { // empty-string MAC, as libolm
		return nil, ErrBadMAC
	}
	if len(ct) > cipher.EncryptedLen(MaxPlaintextSize) {
		return nil, fmt.Errorf("backup: decrypt: ciphertext too long: %w", ErrMalformed)
	}
	pt, err := ck.Decrypt(ct)
	if err != nil {
		return nil, fmt.Errorf("backup: decrypt: %w", ErrDecrypt)
	}
	return &Decrypted{Plaintext: pt, Provenance: prov}, nil
}

func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

// AuthData is the auth_data of a backup version using [Algorithm].
type AuthData struct {
	PublicKey  keys.Curve25519PublicKey     `json:"public_key"`
	Signatures map[string]map[string]string `json:"signatures,omitempty"`
}

// ParseAuthData parses auth_data JSON (bounded to [MaxSessionDataSize]). It
// does not check signatures: that is signing's job, against keys the caller
// trusts.
func ParseAuthData(b []byte) (*AuthData, error) {
	if len(b) > MaxSessionDataSize {
		return nil, fmt.Errorf("backup: auth_data of %d bytes: %w", len(b), ErrMalformed)
	}
	var a AuthData
	if err := json.Unmarshal(b, &a); err != nil || a.PublicKey.IsZero() {
		return nil, fmt.Errorf("backup: auth_data: %w", ErrMalformed)
	}
	return &a, nil
}

// Matches reports whether k is the decryption key of the backup described
// by a (public keys are not secret: a plain comparison is fine).
func (a *AuthData) Matches(k *DecryptionKey) bool { return a.PublicKey == k.PublicKey() }

// SignatureKeyIDs lists the key IDs that signed a for userID, sorted.
func (a *AuthData) SignatureKeyIDs(userID id.UserID) []string {
	var out []string
	for kid := range a.Signatures[userID.String()] {
		out = append(out, kid)
	}
	sort.Strings(out)
	return out
}
