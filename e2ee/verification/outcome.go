package verification

import (
	"encoding/json"
	"fmt"

	"myelin/crypto/crosssign"
	"myelin/crypto/sas"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// Outcome is what a successful verification proved: public keys that were
// pinned when the flow started and whose MACs verified. Nothing else may be
// marked trusted or signed because of the flow.
type Outcome struct {
	Flow FlowRef
	// Own is our user; Their the other user and device.
	Own   id.UserID
	Their sas.Party
	// Device is the other device's Ed25519 key (a device key ID of
	// Their.Device); nil if the device key was not part of the verification
	// (a QR code that carried only master keys).
	Device *sas.Key
	// MasterKey is the other user's master key; nil if it was not part of
	// the verification (device-only, or a user without cross-signing).
	MasterKey *sas.Key
}

// SelfVerification reports whether the other device is one of our own.
func (o *Outcome) SelfVerification() bool { return o.Own == o.Their.User }

// SignatureUpload is the body of POST /_matrix/client/v3/keys/signatures/upload:
// user ID to key ID (a device ID, or the base64 of a master key) to the
// signed object.
type SignatureUpload map[string]map[string]json.RawMessage

// SignOtherUser signs the other user's master key with our user-signing key,
// after verifying another user. masterKeyJSON is their master-key object as
// the store holds it; it must hold exactly the master key this verification
// proved (crosssign.SigningKeys.SignMasterKey checks it), so neither a key ID
// nor a swapped object can redirect the signature (threat model A2).
func (o *Outcome) SignOtherUser(ours *crosssign.SigningKeys, masterKeyJSON []byte) (SignatureUpload, error) {
	if ours == nil || ours.UserID != o.Own {
		return nil, fmt.Errorf("verification: sign: signing keys are not ours: %w", crosssign.ErrNoSecretKey)
	}
	if o.SelfVerification() {
		return nil, fmt.Errorf("verification: sign: own device, use SignOwnDevice: %w", ErrWrongState)
	}
	if o.MasterKey == nil {
		return nil, ErrNoMasterKey
	}
	pub := o.MasterKey.PublicKey()
	signed, err := ours.SignMasterKey(masterKeyJSON, pub)
	if err != nil {
		return nil, fmt.Errorf("verification: sign master key: %w", err)
	}
	return SignatureUpload{o.Their.User.String(): {pub.String(): signed}}, nil
}

// SignOwnDevice signs our other device with our self-signing key, after
// verifying one of our own devices. deviceKeysJSON is that device's
// device-keys object as the store holds it; it must be the device and the
// Ed25519 key this verification proved.
func (o *Outcome) SignOwnDevice(ours *crosssign.SigningKeys, deviceKeysJSON []byte) (SignatureUpload, error) {
	if ours == nil || ours.UserID != o.Own {
		return nil, fmt.Errorf("verification: sign: signing keys are not ours: %w", crosssign.ErrNoSecretKey)
	}
	if !o.SelfVerification() {
		return nil, fmt.Errorf("verification: sign: another user's device, use SignOtherUser: %w", ErrWrongState)
	}
	if o.Device == nil {
		return nil, fmt.Errorf("verification: sign device: the device key was not verified: %w", ErrKeyChanged)
	}
	dev, err := crosssign.ParseDeviceKeys(deviceKeysJSON)
	if err != nil {
		return nil, fmt.Errorf("verification: sign device: %w", err)
	}
	// Public keys and IDs: plain comparison is fine.
	if dev.UserID != o.Own || dev.DeviceID != o.Their.Device || dev.Ed25519 != o.Device.PublicKey() {
		return nil, fmt.Errorf("verification: sign device: object is not the verified device: %w", ErrKeyChanged)
	}
	signed, err := ours.SignDevice(deviceKeysJSON)
	if err != nil {
		return nil, fmt.Errorf("verification: sign device: %w", err)
	}
	return SignatureUpload{o.Own.String(): {o.Their.Device.String(): signed}}, nil
}

// SignOwnMasterKey signs our own master key with this device's Ed25519 key,
// after one of our other devices proved it to us (a new device learning its
// identity). The spec lets other users see such signatures; it helps
// clients that migrate from device verification. masterKeyJSON is our
// master-key object as the store holds it; it must hold exactly the master
// key this verification proved.
func (o *Outcome) SignOwnMasterKey(device id.DeviceID, deviceKey *keys.Ed25519SecretKey, masterKeyJSON []byte) (SignatureUpload, error) {
	if !o.SelfVerification() {
		return nil, fmt.Errorf("verification: sign own master key: not a self-verification: %w", ErrWrongState)
	}
	if o.MasterKey == nil {
		return nil, ErrNoMasterKey
	}
	if deviceKey == nil || device.IsZero() {
		return nil, fmt.Errorf("verification: sign own master key: %w", crosssign.ErrNoSecretKey)
	}
	k, err := crosssign.ParseKey(masterKeyJSON)
	if err != nil {
		return nil, fmt.Errorf("verification: sign own master key: %w", err)
	}
	// Public keys and IDs: plain comparison is fine.
	if k.Usage != crosssign.UsageMaster || k.UserID != o.Own || k.PublicKey != o.MasterKey.PublicKey() {
		return nil, fmt.Errorf("verification: sign own master key: object is not the verified key: %w", ErrKeyChanged)
	}
	signed, err := signing.Sign(masterKeyJSON, o.Own.String(), "ed25519:"+device.String(), deviceKey)
	if err != nil {
		return nil, fmt.Errorf("verification: sign own master key: %w", err)
	}
	return SignatureUpload{o.Own.String(): {k.PublicKey.String(): signed}}, nil
}
