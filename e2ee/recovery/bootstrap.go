package recovery

import (
	"encoding/json"
	"fmt"
	"io"

	"myelin/canonicaljson"
	"myelin/crypto/backup"
	"myelin/crypto/crosssign"
	"myelin/crypto/ssss"
	"myelin/id"
	"myelin/keys"
)

// BootstrapOptions are the inputs of NewBootstrap.
type BootstrapOptions struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	// Device signs the backup auth_data with this device's Ed25519 key.
	Device Signer
	// DeviceKeys is this device's device-keys object (as uploaded); if
	// given, it is signed with the new self-signing key for
	// /keys/signatures/upload.
	DeviceKeys []byte
	// Passphrase, if not empty, also derives the secret-storage key
	// (PBKDF2 with fresh parameters); the recovery key works either way.
	// With a passphrase the key is the derived one.
	Passphrase string
	// KeyName is the optional name in the key description.
	KeyName string
}

// Bootstrap is everything a first device uploads to set up cross-signing,
// secret storage and key backup. Upload order: DeviceSigningUpload (with
// user-interactive auth), SignaturesUpload, the key description and the
// secrets (AccountData, the default key last), then Backup.RequestBody.
type Bootstrap struct {
	// SigningKeys are the new cross-signing keys.
	SigningKeys *crosssign.SigningKeys
	// StorageKey is the new secret-storage key; StorageKey.RecoveryKey()
	// is what the user writes down.
	StorageKey *ssss.Key
	// KeyID is the new key's ID.
	KeyID string
	// Backup is the new backup version, signed by the master key and the
	// device.
	Backup *NewBackupVersion
	// AccountData holds m.secret_storage.key.<id>,
	// m.secret_storage.default_key and the four secrets.
	AccountData AccountData
	// DeviceSigningUpload is the body of POST /keys/device_signing/upload
	// without "auth".
	DeviceSigningUpload json.RawMessage
	// SignaturesUpload is the body of POST /keys/signatures/upload with our
	// device signed by the self-signing key; nil without DeviceKeys.
	SignaturesUpload json.RawMessage
	// Pin is what to remember about the new key.
	Pin *Pin
	// Published are the public keys, to check later recoveries against.
	Published *Published
}

// Wipe clears the private keys.
func (b *Bootstrap) Wipe() {
	b.SigningKeys.Wipe()
	b.StorageKey.Wipe()
	b.Backup.Key.Wipe()
}

// NewBootstrap creates cross-signing keys, a secret-storage key (and
// description, with key check), a backup version, and encrypts the three
// cross-signing seeds and the backup key into secret storage.
func NewBootstrap(rand io.Reader, o BootstrapOptions) (*Bootstrap, error) {
	if o.UserID.IsZero() || o.DeviceID.IsZero() || o.Device == nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", ErrInvalidArgument)
	}
	b := &Bootstrap{AccountData: AccountData{}}
	ok := false
	defer func() {
		if !ok {
			if b.SigningKeys != nil {
				b.SigningKeys.Wipe()
			}
			if b.StorageKey != nil {
				b.StorageKey.Wipe()
			}
			if b.Backup != nil {
				b.Backup.Key.Wipe()
			}
		}
	}()
	var err error
	if b.SigningKeys, err = crosssign.Generate(rand, o.UserID); err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	var pp *ssss.PassphraseParams
	if o.Passphrase != "" {
		if pp, err = ssss.NewPassphraseParams(rand); err != nil {
			return nil, fmt.Errorf("recovery: bootstrap: %w", err)
		}
		if b.StorageKey, err = ssss.DeriveKeyFromPassphrase(o.Passphrase, pp); err != nil {
			return nil, fmt.Errorf("recovery: bootstrap: %w", err)
		}
	} else if b.StorageKey, err = ssss.GenerateKey(rand); err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	if b.KeyID, err = ssss.GenerateKeyID(rand); err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	desc, err := ssss.NewKeyDescription(rand, b.StorageKey, o.KeyName, pp)
	if err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	descJSON, err := json.Marshal(desc)
	if err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	b.AccountData[KeyTypePrefix+b.KeyID] = descJSON
	dk, _ := json.Marshal(map[string]string{"key": b.KeyID})
	b.AccountData[DefaultKeyType] = dk
	locked, err := OpenSecretStorage(b.AccountData, nil)
	if err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	u, err := locked.Unlock(b.StorageKey)
	if err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	defer u.Wipe()
	b.Pin = u.Pin()

	if b.Backup, err = CreateBackupVersion(rand, o.UserID, b.SigningKeys.Master, o.DeviceID, o.Device); err != nil {
		return nil, err
	}
	secrets := []struct {
		name string
		val  []byte
	}{
		{SecretMaster, []byte(keys.EncodeBase64(b.SigningKeys.Master.Seed()))},
		{SecretSelfSigning, []byte(keys.EncodeBase64(b.SigningKeys.SelfSigning.Seed()))},
		{SecretUserSigning, []byte(keys.EncodeBase64(b.SigningKeys.UserSigning.Seed()))},
		{SecretBackup, b.Backup.Key.Secret()},
	}
	for _, s := range secrets {
		c, err := u.EncryptSecret(rand, s.name, s.val)
		clear(s.val)
		if err != nil {
			return nil, err
		}
		b.AccountData[s.name] = c
	}

	msk, err := b.SigningKeys.MasterKeyJSON()
	if err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	ssk, err := b.SigningKeys.SelfSigningKeyJSON()
	if err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	usk, err := b.SigningKeys.UserSigningKeyJSON()
	if err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	if b.DeviceSigningUpload, err = canonicaljson.Marshal(map[string]any{
		"master_key": json.RawMessage(msk), "self_signing_key": json.RawMessage(ssk), "user_signing_key": json.RawMessage(usk),
	}); err != nil {
		return nil, fmt.Errorf("recovery: bootstrap: %w", err)
	}
	if o.DeviceKeys != nil {
		signed, err := b.SigningKeys.SignDevice(o.DeviceKeys)
		if err != nil {
			return nil, fmt.Errorf("recovery: bootstrap: sign device: %w", err)
		}
		if b.SignaturesUpload, err = canonicaljson.Marshal(map[string]any{
			o.UserID.String(): map[string]any{o.DeviceID.String(): json.RawMessage(signed)},
		}); err != nil {
			return nil, fmt.Errorf("recovery: bootstrap: %w", err)
		}
	}
	b.Published = &Published{
		UserID:         o.UserID,
		MasterKey:      b.SigningKeys.Master.PublicKey(),
		SelfSigningKey: b.SigningKeys.SelfSigning.PublicKey(),
		UserSigningKey: b.SigningKeys.UserSigning.PublicKey(),
		BackupKey:      b.Backup.Key.PublicKey(),
	}
	ok = true
	return b, nil
}

// Published are the public keys that recovered or shared secrets are checked
// against before use (threat model A5 rule 3, A6 rule 1, B8 rule 3). A zero
// key means "not published": the matching secret is not recovered.
type Published struct {
	// UserID is our user (the owner of the keys).
	UserID id.UserID
	// MasterKey, SelfSigningKey and UserSigningKey are our cross-signing
	// public keys from /keys/query (PublishedFromKeysQuery checks the chain).
	MasterKey      keys.Ed25519PublicKey
	SelfSigningKey keys.Ed25519PublicKey
	UserSigningKey keys.Ed25519PublicKey
	// BackupKey is the public key of a backup version that is trusted
	// independently of the secret (TrustedVersion.PublicKey).
	BackupKey keys.Curve25519PublicKey
}

// PublishedFromKeysQuery parses our own master, self-signing and
// user-signing key objects from /keys/query (master_keys, self_signing_keys,
// user_signing_keys entries for user) and checks that the self-signing and
// user-signing keys are signed by the master key. userSigning may be nil.
// backupVersion may be nil; if given, its public key is the trusted backup
// key.
func PublishedFromKeysQuery(user id.UserID, master, selfSigning, userSigning []byte, backupVersion *TrustedVersion) (*Published, error) {
	parse := func(raw []byte, usage crosssign.Usage) (*crosssign.Key, error) {
		k, err := crosssign.ParseKey(raw)
		if err != nil {
			return nil, err
		}
		if k.Usage != usage {
			return nil, crosssign.ErrWrongUsage
		}
		if k.UserID != user {
			return nil, crosssign.ErrWrongUser
		}
		return k, nil
	}
	m, err := parse(master, crosssign.UsageMaster)
	if err != nil {
		return nil, fmt.Errorf("recovery: published master key: %w", err)
	}
	p := &Published{UserID: user, MasterKey: m.PublicKey}
	s, err := parse(selfSigning, crosssign.UsageSelfSigning)
	if err != nil {
		return nil, fmt.Errorf("recovery: published self-signing key: %w", err)
	}
	if err := s.VerifySignedBy(user, m.PublicKey); err != nil {
		return nil, fmt.Errorf("recovery: published self-signing key: %w", err)
	}
	p.SelfSigningKey = s.PublicKey
	if userSigning != nil {
		u, err := parse(userSigning, crosssign.UsageUserSigning)
		if err != nil {
			return nil, fmt.Errorf("recovery: published user-signing key: %w", err)
		}
		if err := u.VerifySignedBy(user, m.PublicKey); err != nil {
			return nil, fmt.Errorf("recovery: published user-signing key: %w", err)
		}
		p.UserSigningKey = u.PublicKey
	}
	if backupVersion != nil && backupVersion.trusted {
		p.BackupKey = backupVersion.PublicKey
	}
	return p, nil
}

// Recovered are the secrets recovered from secret storage, each checked
// against its published public key.
type Recovered struct {
	// SigningKeys holds the cross-signing keys whose public keys were
	// published (UserSigning is nil if none was).
	SigningKeys *crosssign.SigningKeys
	// BackupKey is nil unless Published.BackupKey was set.
	BackupKey *backup.DecryptionKey
}

// Wipe clears the recovered keys.
func (r *Recovered) Wipe() {
	r.SigningKeys.Wipe()
	if r.BackupKey != nil {
		r.BackupKey.Wipe()
	}
}

// Recover decrypts the cross-signing keys and the backup key from secret
// storage and checks each against pub before returning any of them: a
// secret whose MAC fails, that does not decode, or whose public key differs
// from the published one (an IV swapped by the server, threat model A6; a
// rollback, B8) makes the whole recovery fail with *SecretError naming it.
// The master key is required; the user-signing key is recovered when
// pub.UserSigningKey is set, the backup key when pub.BackupKey is set.
func Recover(u *UnlockedStorage, ad AccountData, pub *Published) (*Recovered, error) {
	if u == nil || pub == nil || pub.UserID.IsZero() || pub.MasterKey.IsZero() || pub.SelfSigningKey.IsZero() {
		return nil, fmt.Errorf("recovery: recover: %w", ErrInvalidArgument)
	}
	sk := &crosssign.SigningKeys{UserID: pub.UserID}
	r := &Recovered{SigningKeys: sk}
	fail := func(name string, err error) (*Recovered, error) {
		r.Wipe()
		return nil, &SecretError{Name: name, Reason: err}
	}
	signing := []struct {
		name string
		pub  keys.Ed25519PublicKey
		dst  **keys.Ed25519SecretKey
	}{
		{SecretMaster, pub.MasterKey, &sk.Master},
		{SecretSelfSigning, pub.SelfSigningKey, &sk.SelfSigning},
		{SecretUserSigning, pub.UserSigningKey, &sk.UserSigning},
	}
	for _, s := range signing {
		if s.pub.IsZero() {
			continue
		}
		k, err := recoverSigningKey(u, ad, s.name, s.pub)
		if err != nil {
			return fail(s.name, err)
		}
		*s.dst = k
	}
	if !pub.BackupKey.IsZero() {
		k, err := recoverBackupKey(u, ad, pub.BackupKey)
		if err != nil {
			return fail(SecretBackup, err)
		}
		r.BackupKey = k
	}
	return r, nil
}

func recoverSigningKey(u *UnlockedStorage, ad AccountData, name string, want keys.Ed25519PublicKey) (*keys.Ed25519SecretKey, error) {
	pt, err := u.decrypt(ad, name)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	seed, err := ssss.DecodeKeySecret(pt)
	if err != nil {
		return nil, err
	}
	defer clear(seed[:])
	k, err := keys.NewEd25519SecretKeyFromSeed(seed[:])
	if err != nil {
		return nil, err
	}
	if k.PublicKey() != want {
		k.Wipe()
		return nil, ErrSecretMismatch
	}
	return k, nil
}

func recoverBackupKey(u *UnlockedStorage, ad AccountData, want keys.Curve25519PublicKey) (*backup.DecryptionKey, error) {
	pt, err := u.decrypt(ad, SecretBackup)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return checkBackupSecret(pt, want)
}

func checkBackupSecret(pt []byte, want keys.Curve25519PublicKey) (*backup.DecryptionKey, error) {
	if want.IsZero() {
		return nil, ErrNoTrustedPublicKey
	}
	k, err := backup.ParseSecret(pt)
	if err != nil {
		return nil, err
	}
	if k.PublicKey() != want {
		k.Wipe()
		return nil, ErrSecretMismatch
	}
	return k, nil
}

// checkSigningSecret checks a shared cross-signing seed against want.
func checkSigningSecret(pt []byte, want keys.Ed25519PublicKey) (*keys.Ed25519SecretKey, error) {
	if want.IsZero() {
		return nil, ErrNoTrustedPublicKey
	}
	seed, err := ssss.DecodeKeySecret(pt)
	if err != nil {
		return nil, err
	}
	defer clear(seed[:])
	k, err := keys.NewEd25519SecretKeyFromSeed(seed[:])
	if err != nil {
		return nil, err
	}
	if k.PublicKey() != want {
		k.Wipe()
		return nil, ErrSecretMismatch
	}
	return k, nil
}
