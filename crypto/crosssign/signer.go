package crosssign

import (
	"errors"
	"fmt"
	"io"

	"myelin/canonicaljson"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// SigningKeys holds a user's cross-signing private keys. Any of the three
// may be nil when the key is not held on this device (a device that
// restored only the SSK and USK from secret storage, for example); methods
// that need a missing key return [ErrNoSecretKey].
type SigningKeys struct {
	UserID      id.UserID
	Master      *keys.Ed25519SecretKey
	SelfSigning *keys.Ed25519SecretKey
	UserSigning *keys.Ed25519SecretKey
}

// Generate creates a new master, self-signing and user-signing key for user.
// It reads exactly 96 bytes from rand: the MSK, SSK and USK seeds in order.
func Generate(rand io.Reader, user id.UserID) (*SigningKeys, error) {
	if user.IsZero() {
		return nil, errors.New("crosssign: generate: empty user ID")
	}
	s := &SigningKeys{UserID: user}
	for _, dst := range []**keys.Ed25519SecretKey{&s.Master, &s.SelfSigning, &s.UserSigning} {
		k, err := keys.GenerateEd25519SecretKey(rand)
		if err != nil {
			s.Wipe()
			return nil, fmt.Errorf("crosssign: generate: %w", err)
		}
		*dst = k
	}
	return s, nil
}

// Wipe clears the private keys held.
func (s *SigningKeys) Wipe() {
	for _, k := range []*keys.Ed25519SecretKey{s.Master, s.SelfSigning, s.UserSigning} {
		if k != nil {
			k.Wipe()
		}
	}
}

// String redacts the private keys.
func (s *SigningKeys) String() string { return "crosssign.SigningKeys(REDACTED)" }

// GoString redacts the private keys.
func (s *SigningKeys) GoString() string { return s.String() }

// Format redacts the private keys for every fmt verb.
func (s *SigningKeys) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

func (s *SigningKeys) need(k *keys.Ed25519SecretKey, name string) error {
	if k == nil {
		return fmt.Errorf("%w: %s", ErrNoSecretKey, name)
	}
	return nil
}

// keyObject builds the unsigned CrossSigningKey object for pk.
func (s *SigningKeys) keyObject(usage Usage, pk keys.Ed25519PublicKey) map[string]any {
	return map[string]any{
		"user_id": s.UserID.String(),
		"usage":   []any{string(usage)},
		"keys":    map[string]any{keyIDOf(pk): pk.String()},
	}
}

// MasterKeyJSON returns the MSK object (unsigned: the spec makes the MSK's
// own signatures optional; devices may add theirs with signing.Sign).
func (s *SigningKeys) MasterKeyJSON() ([]byte, error) {
	if err := s.need(s.Master, "master"); err != nil {
		return nil, err
	}
	return canonicaljson.Marshal(s.keyObject(UsageMaster, s.Master.PublicKey()))
}

// SelfSigningKeyJSON returns the SSK object signed by the MSK.
func (s *SigningKeys) SelfSigningKeyJSON() ([]byte, error) {
	return s.subKeyJSON(UsageSelfSigning, s.SelfSigning)
}

// UserSigningKeyJSON returns the USK object signed by the MSK.
func (s *SigningKeys) UserSigningKeyJSON() ([]byte, error) {
	return s.subKeyJSON(UsageUserSigning, s.UserSigning)
}

func (s *SigningKeys) subKeyJSON(usage Usage, k *keys.Ed25519SecretKey) ([]byte, error) {
	if err := s.need(s.Master, "master"); err != nil {
		return nil, err
	}
	if err := s.need(k, string(usage)); err != nil {
		return nil, err
	}
	return signing.SignFields(s.keyObject(usage, k.PublicKey()), s.UserID.String(), keyIDOf(s.Master.PublicKey()), s.Master)
}

// publicKeys returns the base64 of every cross-signing public key held.
func (s *SigningKeys) publicKeys() []string {
	var out []string
	for _, k := range []*keys.Ed25519SecretKey{s.Master, s.SelfSigning, s.UserSigning} {
		if k != nil {
			out = append(out, k.PublicKey().String())
		}
	}
	return out
}

// SignDevice signs one of our own devices' device-keys object with the SSK
// and returns it with the signature merged in. It refuses objects that do
// not parse and self-verify ([ParseDeviceKeys]), that belong to another
// user, or whose device ID equals one of our cross-signing public keys.
func (s *SigningKeys) SignDevice(deviceKeys []byte) ([]byte, error) {
	if err := s.need(s.SelfSigning, "self_signing"); err != nil {
		return nil, err
	}
	d, err := ParseDeviceKeys(deviceKeys)
	if err != nil {
		return nil, fmt.Errorf("crosssign: sign device: %w", err)
	}
	if d.UserID != s.UserID {
		return nil, fmt.Errorf("crosssign: sign device: %w", ErrUserIDMismatch)
	}
	for _, pk := range s.publicKeys() {
		if d.DeviceID.String() == pk {
			return nil, fmt.Errorf("crosssign: sign device: %w", ErrDeviceIDIsCrossSigningKey)
		}
	}
	fields := cloneFields(d.obj.Fields())
	return signing.SignFields(fields, s.UserID.String(), keyIDOf(s.SelfSigning.PublicKey()), s.SelfSigning)
}

// SignMasterKey signs another user's master-key object with our USK. expected
// is the master public key that verification (SAS or QR) established for that
// user: the object must hold exactly that key, so a key ID or a swapped
// object can never redirect the signature (threat model A2).
func (s *SigningKeys) SignMasterKey(masterKey []byte, expected keys.Ed25519PublicKey) ([]byte, error) {
	if err := s.need(s.UserSigning, "user_signing"); err != nil {
		return nil, err
	}
	k, err := ParseKey(masterKey)
	if err != nil {
		return nil, fmt.Errorf("crosssign: sign master key: %w", err)
	}
	if k.Usage != UsageMaster {
		return nil, fmt.Errorf("crosssign: sign master key: %w", ErrWrongUsage)
	}
	if k.UserID == s.UserID {
		return nil, fmt.Errorf("crosssign: sign master key: %w: our own master key is not signed by our USK", ErrWrongUser)
	}
	if k.PublicKey != expected { // public data: a plain comparison is fine
		return nil, fmt.Errorf("crosssign: sign master key: %w", ErrKeyMismatch)
	}
	fields := cloneFields(k.obj.Fields())
	return signing.SignFields(fields, s.UserID.String(), keyIDOf(s.UserSigning.PublicKey()), s.UserSigning)
}

// cloneFields copies the top level and the signatures map, which is all
// SignFields modifies.
func cloneFields(f map[string]any) map[string]any {
	out := make(map[string]any, len(f))
	for k, v := range f {
		out[k] = v
	}
	if sigs, ok := f["signatures"].(map[string]any); ok {
		c := make(map[string]any, len(sigs))
		for signer, entry := range sigs {
			if m, ok := entry.(map[string]any); ok {
				mc := make(map[string]any, len(m))
				for kid, sig := range m {
					mc[kid] = sig
				}
				c[signer] = mc
			} else {
				c[signer] = entry
			}
		}
		out["signatures"] = c
	}
	return out
}
