package crosssign

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"myelin/id"
	"myelin/keys"
)

// MaxDevices bounds the number of device objects [Evaluate] examines for
// one user; more is treated as an attack on the client.
const MaxDevices = 1000

// ErrTooManyDevices is returned by [Evaluate] when a user lists more than
// [MaxDevices] devices.
var ErrTooManyDevices = errors.New("crosssign: too many devices")

// ErrNoIdentity: the server returned no master or no self-signing key.
var ErrNoIdentity = errors.New("crosssign: no cross-signing identity")

// ErrDeviceIDCollision reports, in [Result.IdentityErr] context, that a
// device ID of the user equals one of the user's cross-signing keys.
var ErrDeviceIDCollision = errors.New("crosssign: a device ID collides with a cross-signing key")

// KnownDevice is what we saw before for a device ID.
type KnownDevice struct {
	Ed25519    keys.Ed25519PublicKey
	Curve25519 keys.Curve25519PublicKey
}

// OurIdentity is our own cross-signing identity as trusted locally. The
// caller asserts that UserSigningKey chains to MasterKey and that MasterKey
// is trusted (we hold its private key or verified it): otherwise "verified"
// would mean nothing (threat model B1 rule 6, CVE-2024-40648).
type OurIdentity struct {
	UserID         id.UserID
	MasterKey      keys.Ed25519PublicKey
	UserSigningKey keys.Ed25519PublicKey
}

// Input is everything [Evaluate] judges for one user, as the server served
// it (raw JSON from /keys/query) plus what we remember.
type Input struct {
	// UserID is the user we asked about.
	UserID id.UserID
	// MasterKey and SelfSigningKey are the raw CrossSigningKey objects served
	// for UserID (nil if none).
	MasterKey      []byte
	SelfSigningKey []byte
	// ListedUserID is the key under which the server listed Devices in
	// device_keys; empty means UserID.
	ListedUserID string
	// Devices maps the device IDs under which the server listed device-keys
	// objects to those objects.
	Devices map[string][]byte
	// Our is our own trusted identity; nil if we have none.
	Our *OurIdentity
	// PinnedMasterKey is the master key we pinned for UserID earlier
	// (trust on first use); nil if none.
	PinnedMasterKey *keys.Ed25519PublicKey
	// KnownDevices holds the keys we saw earlier for UserID's device IDs.
	KnownDevices map[id.DeviceID]KnownDevice
}

// DeviceStatus is a valid device and whether it is cross-signed.
type DeviceStatus struct {
	Device *Device
	// CrossSigned: signed by the user's SSK, which is signed by the MSK
	// served now. Whether that MSK is trusted is Result.Verified /
	// Result.Changed.
	CrossSigned bool
}

// Result is the verdict of [Evaluate].
type Result struct {
	UserID id.UserID
	// MasterKey and SelfSigningKey are set only when IdentityErr is nil.
	MasterKey      keys.Ed25519PublicKey
	SelfSigningKey keys.Ed25519PublicKey
	// IdentityErr says why the served cross-signing identity was ignored
	// (ErrNoIdentity, ErrMalformedKey, ErrWrongUsage, ErrWrongUser,
	// ErrNotSigned); nil if it is usable.
	IdentityErr error
	// Verified: the MSK is signed by our trusted USK (or, for our own user,
	// equals our trusted MSK), and no device ID collides with a
	// cross-signing key.
	Verified bool
	// Changed: a master key was pinned and the served identity is missing,
	// unusable or has a different master key. The caller must alert and
	// block sending until the user acknowledges (B1 rule 3).
	Changed bool
	// DeviceIDCollision: some listed device ID equals the base64 of one of
	// the user's cross-signing keys. Verification with this user must be
	// refused (A2 rule 3).
	DeviceIDCollision bool
	// Devices are the valid devices, by device ID.
	Devices map[id.DeviceID]DeviceStatus
	// Invalid are the rejected device objects, by the device ID under which
	// they were listed.
	Invalid map[string]*DeviceError
}

// CrossSigned returns the sorted IDs of the cross-signed devices.
func (r *Result) CrossSigned() []id.DeviceID {
	var out []id.DeviceID
	for d, s := range r.Devices {
		if s.CrossSigned {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b id.DeviceID) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Evaluate judges one user's cross-signing identity and devices. It is pure
// and deterministic. It returns an error only for input it refuses to look
// at (more than [MaxDevices] devices); everything else is in the Result.
func Evaluate(in Input) (*Result, error) {
	if len(in.Devices) > MaxDevices {
		return nil, fmt.Errorf("%w: %d listed", ErrTooManyDevices, len(in.Devices))
	}
	r := &Result{
		UserID:  in.UserID,
		Devices: map[id.DeviceID]DeviceStatus{},
		Invalid: map[string]*DeviceError{},
	}

	// 1. The identity: MSK and SSK of the right usage and user, SSK signed
	// by MSK (B1 rule 2). Anything else: ignore the whole identity.
	var msk, ssk *Key
	switch {
	case in.MasterKey == nil || in.SelfSigningKey == nil:
		r.IdentityErr = ErrNoIdentity
	default:
		var err error
		if msk, err = checkKey(in.MasterKey, UsageMaster, in.UserID); err != nil {
			r.IdentityErr = fmt.Errorf("crosssign: master key: %w", err)
		} else if ssk, err = checkKey(in.SelfSigningKey, UsageSelfSigning, in.UserID); err != nil {
			r.IdentityErr = fmt.Errorf("crosssign: self-signing key: %w", err)
		} else if err = ssk.VerifySignedBy(in.UserID, msk.PublicKey); err != nil {
			r.IdentityErr = fmt.Errorf("crosssign: self-signing key: %w", err)
		} else if ssk.PublicKey == msk.PublicKey {
			r.IdentityErr = fmt.Errorf("crosssign: self-signing key: %w: equals the master key", ErrMalformedKey)
		}
	}
	if r.IdentityErr != nil {
		msk, ssk = nil, nil
	} else {
		r.MasterKey, r.SelfSigningKey = msk.PublicKey, ssk.PublicKey
	}

	// 2. Every cross-signing key string of this user that we know of, valid
	// or not: a device ID equal to any of them is an attack (A2 rule 3).
	crossKeys := map[string]bool{}
	for _, raw := range [][]byte{in.MasterKey, in.SelfSigningKey} {
		for _, k := range looseKeyStrings(raw) {
			crossKeys[k] = true
		}
	}
	if in.PinnedMasterKey != nil {
		crossKeys[in.PinnedMasterKey.String()] = true
	}
	if in.Our != nil && in.Our.UserID == in.UserID {
		crossKeys[in.Our.MasterKey.String()] = true
		crossKeys[in.Our.UserSigningKey.String()] = true
	}

	// 3. Devices.
	listedUser := in.ListedUserID
	if listedUser == "" {
		listedUser = in.UserID.String()
	}
	for listedID, raw := range in.Devices {
		reject := func(reason, cause error) {
			r.Invalid[listedID] = &DeviceError{UserID: listedUser, DeviceID: listedID, Reason: reason, Cause: cause}
		}
		if crossKeys[listedID] {
			r.DeviceIDCollision = true
			reject(ErrDeviceIDIsCrossSigningKey, nil)
			continue
		}
		if listedUser != in.UserID.String() {
			reject(ErrUserIDMismatch, errors.New("listed under another user"))
			continue
		}
		d, err := parseDevice(raw)
		if err != nil {
			var de *DeviceError
			if errors.As(err, &de) {
				// The object's own IDs must match the listing before any
				// other verdict matters.
				if de.UserID != "" && de.UserID != listedUser {
					reject(ErrUserIDMismatch, nil)
				} else if de.DeviceID != "" && de.DeviceID != listedID {
					reject(ErrDeviceIDMismatch, nil)
				} else {
					reject(de.Reason, de.Cause)
				}
			} else {
				reject(ErrDeviceMalformed, err)
			}
			continue
		}
		if d.UserID != in.UserID {
			reject(ErrUserIDMismatch, nil)
			continue
		}
		if d.DeviceID.String() != listedID {
			reject(ErrDeviceIDMismatch, nil)
			continue
		}
		if known, ok := in.KnownDevices[d.DeviceID]; ok {
			// Public data: plain comparisons are fine.
			if known.Ed25519 != d.Ed25519 || known.Curve25519 != d.Curve25519 {
				reject(ErrDeviceKeysChanged, nil)
				continue
			}
		}
		st := DeviceStatus{Device: d}
		if ssk != nil {
			st.CrossSigned = d.VerifySignedBy(in.UserID, ssk.PublicKey) == nil
		}
		r.Devices[d.DeviceID] = st
	}

	// 4. Pinning and verification.
	if in.PinnedMasterKey != nil && (msk == nil || msk.PublicKey != *in.PinnedMasterKey) {
		r.Changed = true
	}
	if msk != nil && in.Our != nil && !r.DeviceIDCollision {
		if in.Our.UserID == in.UserID {
			r.Verified = msk.PublicKey == in.Our.MasterKey
		} else {
			r.Verified = msk.VerifySignedBy(in.Our.UserID, in.Our.UserSigningKey) == nil
		}
	}
	return r, nil
}

// looseKeyStrings extracts every string that a (possibly invalid)
// cross-signing key object presents as a key: the values in "keys" and the
// parts after ":" of its key IDs. It never fails; unparseable input yields
// nothing.
func looseKeyStrings(raw []byte) []string {
	if raw == nil {
		return nil
	}
	fields, err := parseOpts.ParseObject(raw)
	if err != nil {
		return nil
	}
	km, _ := fields["keys"].(map[string]any)
	var out []string
	for kid, v := range km {
		if _, after, ok := strings.Cut(kid, ":"); ok {
			out = append(out, after)
		}
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
