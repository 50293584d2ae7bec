package crosssign

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// The encryption algorithms a device must advertise to be usable: Olm to
// receive room keys, Megolm to decrypt room messages.
const (
	AlgorithmOlm    = "m.olm.v1.curve25519-aes-sha2"
	AlgorithmMegolm = "m.megolm.v1.aes-sha2"
)

// Reasons a device-keys object is rejected; a [*DeviceError] wraps one.
var (
	// ErrDeviceMalformed: not a strictly valid device-keys object (bad JSON,
	// missing or mistyped fields, a key under another device's ID).
	ErrDeviceMalformed = errors.New("crosssign: malformed device keys")
	// ErrBadSelfSignature: the signature by the device's own Ed25519 key is
	// missing or invalid.
	ErrBadSelfSignature = errors.New("crosssign: device self-signature missing or invalid")
	// ErrUserIDMismatch: the user_id inside the object differs from the user
	// under which the server listed it.
	ErrUserIDMismatch = errors.New("crosssign: device user_id differs from where it was listed")
	// ErrDeviceIDMismatch: the device_id inside the object differs from the
	// device ID under which the server listed it.
	ErrDeviceIDMismatch = errors.New("crosssign: device device_id differs from where it was listed")
	// ErrDeviceIDIsCrossSigningKey: the device ID equals the unpadded base64
	// of one of the user's cross-signing public keys (CVE-2022-39250).
	ErrDeviceIDIsCrossSigningKey = errors.New("crosssign: device ID equals a cross-signing public key")
	// ErrDeviceKeysChanged: a known device ID now carries different keys.
	ErrDeviceKeysChanged = errors.New("crosssign: device keys changed under a known device ID")
	// ErrMissingAlgorithms: the device lacks its ed25519 or curve25519 key,
	// or does not advertise both required algorithms.
	ErrMissingAlgorithms = errors.New("crosssign: device lacks a required key or algorithm")
)

// DeviceError explains why a device-keys object was rejected. UserID and
// DeviceID are the IDs under which the server listed the object.
type DeviceError struct {
	UserID   string
	DeviceID string
	Reason   error // one of the Err* device sentinels
	Cause    error // detail, may be nil
}

// Error implements the error interface.
func (e *DeviceError) Error() string {
	s := fmt.Sprintf("crosssign: device %q of %q rejected: %s", e.DeviceID, e.UserID, strings.TrimPrefix(e.Reason.Error(), "crosssign: "))
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the reason and the cause.
func (e *DeviceError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Reason, e.Cause}
	}
	return []error{e.Reason}
}

// Device is a parsed device-keys object whose self-signature verified.
type Device struct {
	UserID     id.UserID
	DeviceID   id.DeviceID
	Algorithms []string
	Ed25519    keys.Ed25519PublicKey
	Curve25519 keys.Curve25519PublicKey
	obj        *signing.Object
}

// Object returns the parsed signed object.
func (d *Device) Object() *signing.Object { return d.obj }

// VerifySignedBy checks that signer signed this device object with the
// cross-signing key pub (key ID "ed25519:<pub>").
func (d *Device) VerifySignedBy(signer id.UserID, pub keys.Ed25519PublicKey) error {
	if err := d.obj.Verify(signer.String(), keyIDOf(pub), pub); err != nil {
		return fmt.Errorf("%w: %w", ErrNotSigned, err)
	}
	return nil
}

// ParseDeviceKeys parses a device-keys object strictly and checks its
// self-signature. It requires user_id, device_id, algorithms (including
// [AlgorithmOlm] and [AlgorithmMegolm]), keys with exactly the entries
// "ed25519:<device_id>" and "curve25519:<device_id>" (no keys under other
// IDs), and a valid signature by the device's Ed25519 key. Errors wrap the
// device sentinels; the [*DeviceError] fields are taken from the object.
func ParseDeviceKeys(raw []byte) (*Device, error) {
	d, err := parseDevice(raw)
	if err != nil {
		var de *DeviceError
		if errors.As(err, &de) {
			return nil, err
		}
		return nil, &DeviceError{Reason: ErrDeviceMalformed, Cause: err}
	}
	return d, nil
}

func parseDevice(raw []byte) (*Device, error) {
	fields, err := parseOpts.ParseObject(raw)
	if err != nil {
		return nil, &DeviceError{Reason: ErrDeviceMalformed, Cause: err}
	}
	uid, _ := fields["user_id"].(string)
	did, _ := fields["device_id"].(string)
	fail := func(reason error, cause error) error {
		return &DeviceError{UserID: uid, DeviceID: did, Reason: reason, Cause: cause}
	}
	user, err := id.ParseUserIDLenient(uid)
	if err != nil {
		return nil, fail(ErrDeviceMalformed, err)
	}
	dev, err := id.ParseDeviceID(did)
	if err != nil {
		return nil, fail(ErrDeviceMalformed, err)
	}
	algsRaw, ok := fields["algorithms"].([]any)
	if !ok {
		return nil, fail(ErrMissingAlgorithms, errors.New("algorithms missing or not an array"))
	}
	algs := make([]string, 0, len(algsRaw))
	for _, a := range algsRaw {
		s, ok := a.(string)
		if !ok {
			return nil, fail(ErrDeviceMalformed, errors.New("algorithm is not a string"))
		}
		algs = append(algs, s)
	}
	if !slices.Contains(algs, AlgorithmOlm) || !slices.Contains(algs, AlgorithmMegolm) {
		return nil, fail(ErrMissingAlgorithms, nil)
	}
	km, ok := fields["keys"].(map[string]any)
	if !ok {
		return nil, fail(ErrMissingAlgorithms, errors.New("keys missing or not an object"))
	}
	d := &Device{UserID: user, DeviceID: dev, Algorithms: algs}
	var haveEd, haveCurve bool
	for kid, v := range km {
		val, ok := v.(string)
		if !ok {
			return nil, fail(ErrDeviceMalformed, errors.New("key value is not a string"))
		}
		alg, keyDev, _ := strings.Cut(kid, ":")
		// A key listed under another device's ID makes the object ambiguous.
		if keyDev != did {
			return nil, fail(ErrDeviceMalformed, errors.New("key ID names another device"))
		}
		switch alg {
		case signing.Ed25519:
			if d.Ed25519, err = keys.ParseEd25519PublicKey(val); err != nil {
				return nil, fail(ErrDeviceMalformed, err)
			}
			haveEd = true
		case "curve25519":
			if d.Curve25519, err = keys.ParseCurve25519PublicKey(val); err != nil {
				return nil, fail(ErrDeviceMalformed, err)
			}
			haveCurve = true
		}
	}
	if !haveEd || !haveCurve {
		return nil, fail(ErrMissingAlgorithms, errors.New("ed25519 or curve25519 key missing"))
	}
	obj, err := signing.NewObject(fields)
	if err != nil {
		return nil, fail(ErrDeviceMalformed, err)
	}
	d.obj = obj
	if err := obj.Verify(uid, signing.Ed25519+":"+did, d.Ed25519); err != nil {
		return nil, fail(ErrBadSelfSignature, err)
	}
	return d, nil
}
