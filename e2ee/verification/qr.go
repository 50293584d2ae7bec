package verification

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"myelin/crypto/sas"
	"myelin/keys"
)

// QR code verification (m.qr_code.show.v1, m.qr_code.scan.v1,
// m.reciprocate.v1): https://spec.matrix.org/v1.16/client-server-api/#qr-codes
//
// The code carries two keys: ours, and what we believe theirs is. The
// scanner checks both against its own pinned beliefs and returns the
// code's secret in a start with method m.reciprocate.v1. The device that
// showed the code trusts only the key it encoded itself, and only after
// the secret matches, from the flow's device, once, and its user confirms
// that the other screen showed success (threat model B11 rule 5).

// ErrQRNotPossible: QR verification does not fit this flow (not advertised
// by both sides, or a key it needs is not known or trusted).
var ErrQRNotPossible = errors.New("verification: QR verification not possible in this flow")

// ShowQR returns the payload of the QR code to show in a ready flow. The
// mode follows from who is verifying whom: another user (0x00, our master
// key and theirs), our own device while we trust our master key (0x01), or
// our own device while we do not yet (0x02).
func (m *Machine) ShowQR(now time.Time, ref FlowRef) ([]byte, error) {
	f, _, err := m.active(now, ref)
	if err != nil {
		return nil, err
	}
	if f.state != Ready || !slices.Contains(f.methods, MethodQRShow) {
		return nil, ErrQRNotPossible
	}
	if f.qr == nil {
		own := m.cfg.Own
		q := &sas.QRCode{FlowID: ref.ID}
		var proves sas.Key
		switch {
		case f.their.User != own.User:
			if own.MasterKey.IsZero() || f.pinnedKeys.MasterKey.IsZero() {
				return nil, ErrQRNotPossible
			}
			q.Mode, q.Key1, q.Key2 = sas.QRVerifyingAnotherUser, own.MasterKey, f.pinnedKeys.MasterKey
			proves = sas.MasterKey(f.pinnedKeys.MasterKey)
		case !own.MasterKey.IsZero():
			q.Mode, q.Key1, q.Key2 = sas.QRSelfVerifyingTrusted, own.MasterKey, f.pinnedKeys.DeviceKey
			proves = sas.DeviceKey(f.their.Device, f.pinnedKeys.DeviceKey)
		default:
			if f.pinnedKeys.MasterKey.IsZero() {
				return nil, ErrQRNotPossible
			}
			q.Mode, q.Key1, q.Key2 = sas.QRSelfVerifyingUntrusted, own.DeviceKey, f.pinnedKeys.MasterKey
			proves = sas.MasterKey(f.pinnedKeys.MasterKey)
		}
		secret, err := sas.NewQRSecret(m.cfg.Rand)
		if err != nil {
			return nil, err
		}
		q.Secret = secret
		f.qr, f.qrShownProves = q, []sas.Key{proves}
	}
	return f.qr.Encode()
}

// ScanQR checks a scanned code against our pinned beliefs and, if it
// matches, sends the reciprocating start. The outcome follows when the
// other device sends done. A payload that does not parse changes nothing
// (the user may scan again); keys that do not match cancel the flow with
// m.key_mismatch.
func (m *Machine) ScanQR(now time.Time, ref FlowRef, payload []byte) (Result, error) {
	f, r, err := m.active(now, ref)
	if err != nil {
		return r, err
	}
	if f.state != Ready || !slices.Contains(f.methods, MethodQRScan) {
		return Result{}, ErrQRNotPossible
	}
	q, err := sas.ParseQRCode(payload)
	if err != nil {
		return Result{}, fmt.Errorf("verification: scan: %w", err)
	}
	if q.FlowID != ref.ID {
		return f.result(f.cancel(CancelKeyMismatch, fmt.Errorf("verification: scan: code for another flow: %w", ErrKeyChanged))), nil
	}
	own := m.cfg.Own
	pk := f.pinnedKeys
	// Public keys: plain comparison is fine. Every key must be known (a
	// zero belief never matches).
	eq := func(a, b keys.Ed25519PublicKey) bool { return !a.IsZero() && a == b }
	var proves sas.Key
	ok := false
	switch q.Mode {
	case sas.QRVerifyingAnotherUser:
		ok = f.their.User != own.User && eq(q.Key1, pk.MasterKey) && eq(q.Key2, own.MasterKey)
		proves = sas.MasterKey(pk.MasterKey)
	case sas.QRSelfVerifyingTrusted:
		// They trust the master key and show it; we learn it.
		ok = f.their.User == own.User && eq(q.Key1, pk.MasterKey) && eq(q.Key2, own.DeviceKey) &&
			(own.MasterKey.IsZero() || own.MasterKey == q.Key1)
		proves = sas.MasterKey(pk.MasterKey)
	case sas.QRSelfVerifyingUntrusted:
		// They do not trust the master key; we do, and vouch for their device.
		ok = f.their.User == own.User && eq(q.Key1, pk.DeviceKey) && eq(q.Key2, own.MasterKey)
		proves = sas.DeviceKey(f.their.Device, pk.DeviceKey)
	}
	if !ok {
		return f.result(f.cancel(CancelKeyMismatch, fmt.Errorf("verification: scan: keys in the code are not the expected ones: %w", sas.ErrKeyMismatch))), nil
	}
	out := f.outgoing(TypeStart, map[string]any{
		"from_device": own.Device.String(),
		"method":      MethodReciprocate,
		"secret":      keys.EncodeBase64(q.Secret),
	})
	f.weStarted = true
	f.startMethod = MethodReciprocate
	f.qrScanned = []sas.Key{proves}
	f.state = Started
	return f.result(Result{Send: []Outgoing{out}}), nil
}

// onReciprocate handles a start with m.reciprocate.v1: the other device
// scanned our code. checkSender already tied it to the flow's device and
// onStart to the Ready state, so it is accepted once.
func (f *flow) onReciprocate(c *content) Result {
	if f.qr == nil || !slices.Contains(f.methods, MethodReciprocate) {
		return f.cancel(CancelUnknownMethod, fmt.Errorf("verification: reciprocate without a code shown: %w", ErrUnexpectedMessage))
	}
	if err := f.qr.VerifySecret(c.Secret); err != nil {
		return f.cancel(CancelKeyMismatch, err)
	}
	f.qrReciprocated = true
	f.state = Started
	return Result{QRScanned: true}
}

// ConfirmQRScanned records that our user saw the other device report a
// successful scan of our code: we trust the key we encoded, and send done.
func (m *Machine) ConfirmQRScanned(now time.Time, ref FlowRef) (Result, error) {
	f, r, err := m.active(now, ref)
	if err != nil {
		return r, err
	}
	if f.state != Started || !f.qrReciprocated {
		return Result{}, ErrWrongState
	}
	f.verified = f.qrShownProves
	return f.result(f.finish()), nil
}
