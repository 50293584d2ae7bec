package recovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"myelin/canonicaljson"
	"myelin/crypto/backup"
	"myelin/crypto/ssss"
)

// Account-data event types and secret names.
const (
	// DefaultKeyType is the account-data type naming the default key.
	DefaultKeyType = "m.secret_storage.default_key"
	// KeyTypePrefix prefixes the key ID in a key description's type.
	KeyTypePrefix = "m.secret_storage.key."
	// SecretMaster, SecretSelfSigning and SecretUserSigning hold the
	// cross-signing private keys (base64 of the Ed25519 seed).
	SecretMaster      = "m.cross_signing.master"
	SecretSelfSigning = "m.cross_signing.self_signing"
	SecretUserSigning = "m.cross_signing.user_signing"
	// SecretBackup holds the backup decryption key.
	SecretBackup = backup.SecretName
)

// MinWritePBKDF2Iterations is the lowest PBKDF2 iteration count under which
// this package writes secrets (B8 rule 2). Reading accepts down to
// ssss.MinPBKDF2Iterations, for older accounts.
const MinWritePBKDF2Iterations = ssss.DefaultPBKDF2Iterations

// MinWriteSaltLength is the shortest passphrase salt under which this
// package writes secrets (B8 rule 2).
const MinWriteSaltLength = 32

// AccountData maps account-data event types to their content, as read from
// /sync or GET /user/{userId}/account_data/{type}, or to be written with PUT.
type AccountData map[string]json.RawMessage

// Pin is what this device remembers of secret storage after the first
// successful unlock (or after creating it): the default key ID and the
// canonical JSON of its description. Persist it (it is not secret) and pass it
// to OpenSecretStorage.
type Pin struct {
	KeyID       string          `json:"key_id"`
	Description json.RawMessage `json:"description"`
}

// LockedStorage is the default secret-storage key, checked against the pin,
// waiting for the user's recovery key or passphrase.
type LockedStorage struct {
	KeyID       string
	Description *ssss.KeyDescription
	canonical   []byte
}

// OpenSecretStorage finds the default key in account data and checks it
// against pin: another default key ID, or a different description (algorithm,
// passphrase parameters, key check, name), is refused with
// *KeyDescriptionChangedError (B8 rules 1 and 5: no silent switch of the
// default key). Descriptions without a key check are refused
// (ssss.ErrMissingKeyCheck), as are passphrase parameters below the ssss floor.
//
// pin is nil on first use, and after the user has confirmed a change: the
// user must then unlock the new key with its own recovery key or passphrase,
// and the Unlocked storage's Pin replaces the old one.
func OpenSecretStorage(ad AccountData, pin *Pin) (*LockedStorage, error) {
	raw, ok := ad[DefaultKeyType]
	if !ok {
		return nil, ErrNoDefaultKey
	}
	if len(raw) > ssss.MaxContentSize {
		return nil, fmt.Errorf("recovery: default key: %w", ErrTooLarge)
	}
	var dk struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(raw, &dk); err != nil {
		return nil, fmt.Errorf("recovery: default key: %w: %v", ErrMalformed, err)
	}
	if dk.Key == "" || len(dk.Key) > MaxIDLength {
		return nil, ErrNoDefaultKey
	}
	if pin != nil && pin.KeyID != dk.Key {
		return nil, &KeyDescriptionChangedError{Kind: DefaultKeyChanged, PinnedKeyID: pin.KeyID, KeyID: dk.Key}
	}
	draw, ok := ad[KeyTypePrefix+dk.Key]
	if !ok {
		return nil, fmt.Errorf("recovery: key description %q: %w", dk.Key, ErrNoDefaultKey)
	}
	if len(draw) > ssss.MaxContentSize {
		return nil, fmt.Errorf("recovery: key description: %w", ErrTooLarge)
	}
	canonical, err := canonicaljson.Canonicalize(draw)
	if err != nil {
		return nil, fmt.Errorf("recovery: key description: %w: %v", ErrMalformed, err)
	}
	if pin != nil {
		pinned, err := canonicaljson.Canonicalize(pin.Description)
		if err != nil || !bytes.Equal(pinned, canonical) {
			return nil, &KeyDescriptionChangedError{Kind: DescriptionChanged, PinnedKeyID: pin.KeyID, KeyID: dk.Key}
		}
	}
	desc, err := ssss.ParseKeyDescription(draw)
	if err != nil {
		return nil, fmt.Errorf("recovery: key description: %w", err)
	}
	if !desc.HasKeyCheck() {
		return nil, fmt.Errorf("recovery: key description: %w", ssss.ErrMissingKeyCheck)
	}
	return &LockedStorage{KeyID: dk.Key, Description: desc, canonical: canonical}, nil
}

// HasPassphrase reports whether the key can be unlocked with a passphrase.
func (l *LockedStorage) HasPassphrase() bool { return l.Description.Passphrase != nil }

// Unlock checks key against the description's key check (ssss.Unlock).
func (l *LockedStorage) Unlock(key *ssss.Key) (*UnlockedStorage, error) {
	u, err := ssss.Unlock(l.Description, key)
	if err != nil {
		return nil, fmt.Errorf("recovery: unlock: %w", err)
	}
	return l.unlocked(u), nil
}

// UnlockWithRecoveryKey parses the recovery key the user typed and unlocks.
func (l *LockedStorage) UnlockWithRecoveryKey(text string) (*UnlockedStorage, error) {
	k, err := ssss.ParseRecoveryKey(text)
	if err != nil {
		return nil, fmt.Errorf("recovery: unlock: %w", err)
	}
	defer k.Wipe()
	return l.Unlock(k)
}

// UnlockWithPassphrase derives the key from passphrase (PBKDF2 with the
// description's parameters, refused below the ssss floor) and unlocks.
func (l *LockedStorage) UnlockWithPassphrase(passphrase string) (*UnlockedStorage, error) {
	u, err := ssss.UnlockWithPassphrase(l.Description, passphrase)
	if err != nil {
		return nil, fmt.Errorf("recovery: unlock: %w", err)
	}
	return l.unlocked(u), nil
}

func (l *LockedStorage) unlocked(u *ssss.UnlockedKey) *UnlockedStorage {
	return &UnlockedStorage{
		KeyID: l.KeyID, key: u, desc: l.Description,
		pin: Pin{KeyID: l.KeyID, Description: append(json.RawMessage{}, l.canonical...)},
	}
}

// UnlockedStorage is the default secret-storage key after a successful key
// check. Secrets are read through Recover, which checks them against the
// trusted public keys; there is deliberately no unchecked read.
type UnlockedStorage struct {
	KeyID string
	key   *ssss.UnlockedKey
	desc  *ssss.KeyDescription
	pin   Pin
}

// Pin returns what to remember about this key (persist it; pass it to
// OpenSecretStorage next time).
func (u *UnlockedStorage) Pin() *Pin {
	p := u.pin
	p.Description = append(json.RawMessage{}, u.pin.Description...)
	return &p
}

// Wipe clears the key.
func (u *UnlockedStorage) Wipe() { u.key.Wipe() }

// String is redacted.
func (u *UnlockedStorage) String() string {
	return "recovery.UnlockedStorage{" + u.KeyID + ", <redacted>}"
}

// GoString is redacted.
func (u *UnlockedStorage) GoString() string { return u.String() }

// Format prints the redacted form for every verb.
func (u *UnlockedStorage) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, u.String()) }

// writable refuses to write under weakened parameters (B8 rule 2): no key
// check, or a passphrase key below MinWritePBKDF2Iterations or with a salt
// shorter than MinWriteSaltLength.
func (u *UnlockedStorage) writable() error {
	if !u.desc.HasKeyCheck() {
		return ssss.ErrMissingKeyCheck
	}
	if p := u.desc.Passphrase; p != nil && (p.Iterations < MinWritePBKDF2Iterations || len(p.Salt) < MinWriteSaltLength) {
		return ssss.ErrWeakPassphraseParams
	}
	return nil
}

// EncryptSecret returns the account-data content of secret name encrypted
// under this key ({"encrypted": {<key id>: {...}}}). It refuses to write
// under a description with weakened passphrase parameters (B8 rule 2).
func (u *UnlockedStorage) EncryptSecret(rand io.Reader, name string, secret []byte) (json.RawMessage, error) {
	if err := u.writable(); err != nil {
		return nil, fmt.Errorf("recovery: write secret %s: %w", name, err)
	}
	e, err := u.key.Encrypt(rand, name, secret)
	if err != nil {
		return nil, fmt.Errorf("recovery: write secret %s: %w", name, err)
	}
	return json.Marshal(ssss.SecretContent{Encrypted: map[string]ssss.EncryptedData{u.KeyID: *e}})
}

// decrypt reads secret name from ad; the caller checks it semantically.
func (u *UnlockedStorage) decrypt(ad AccountData, name string) ([]byte, error) {
	raw, ok := ad[name]
	if !ok {
		return nil, ErrSecretMissing
	}
	c, err := ssss.ParseSecretContent(raw)
	if err != nil {
		return nil, err
	}
	e, ok := c.Encrypted[u.KeyID]
	if !ok {
		return nil, ErrSecretMissing
	}
	return u.key.Decrypt(name, &e)
}
