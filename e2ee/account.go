package e2ee

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"myelin/canonicaljson"
	"myelin/crypto/crosssign"
	"myelin/crypto/olm"
)

// OTK bookkeeping (threat model B9).
const (
	// OneTimeKeyTarget is how many one-time keys we keep on the server:
	// half of what the account can hold.
	OneTimeKeyTarget = olm.MaxOneTimeKeys / 2
	// OTKUploadInterval is the shortest time between two uploads of new
	// one-time keys, so a server lying about the count cannot make us
	// generate keys without bound.
	OTKUploadInterval = time.Minute
	// OldFallbackLifetime is how long the previous fallback key stays
	// usable after rotation (pre-key messages in flight).
	OldFallbackLifetime = time.Hour
	algSignedCurve      = "signed_curve25519"
)

// signOwn signs obj (without signatures/unsigned) with our device key and
// returns it with the signature added.
func (m *Machine) signOwn(obj map[string]any) map[string]any {
	clean := make(map[string]any, len(obj))
	for k, v := range obj {
		if k != "signatures" && k != "unsigned" {
			clean[k] = v
		}
	}
	b, err := canonicaljson.Marshal(clean)
	if err != nil {
		panic("e2ee: canonical encoding of our own object: " + err.Error())
	}
	sig := m.acct.Sign(b)
	clean["signatures"] = map[string]any{m.user.String(): map[string]any{"ed25519:" + m.device.String(): sig.String()}}
	return clean
}

func (m *Machine) buildDeviceKeys() json.RawMessage {
	dk := m.signOwn(map[string]any{
		"user_id":    m.user.String(),
		"device_id":  m.device.String(),
		"algorithms": []any{crosssign.AlgorithmOlm, crosssign.AlgorithmMegolm},
		"keys": map[string]any{
			"curve25519:" + m.device.String(): m.curve.String(),
			"ed25519:" + m.device.String():    m.ed.String(),
		},
	})
	b, err := canonicaljson.Marshal(dk)
	if err != nil {
		panic("e2ee: device keys: " + err.Error())
	}
	return b
}

// planUpload decides whether to upload keys: device keys not yet posted,
// one-time keys below the target (from the server's count), a fallback key
// that was used. It never queues a second upload while one is pending, so
// the keys in a pending upload are exactly the unpublished ones.
func (m *Machine) planUpload(ctx context.Context, ch *Changes, counts map[string]int, fallbackTypes []string) error {
	now := m.now()
	changed := false
	if m.meta.OldFallback && now.Sub(time.UnixMilli(m.meta.FallbackRotated)) > OldFallbackLifetime {
		m.acct.ForgetOldFallbackKey()
		m.meta.OldFallback = false
		changed = true
	}
	pend, err := m.pending(ctx, RequestKeysUpload)
	if err != nil {
		return err
	}
	if len(pend) > 0 {
		if changed {
			return m.putAccount(ch)
		}
		return nil
	}
	if _, ok := m.acct.UnpublishedFallbackKey(); !ok && fallbackTypes != nil && !slices.Contains(fallbackTypes, algSignedCurve) {
		// Our fallback key was claimed: rotate it.
		if err := m.acct.GenerateFallbackKey(m.rand); err != nil {
			return fmt.Errorf("e2ee: rotate fallback key: %w", err)
		}
		m.meta.OldFallback = true
		m.meta.FallbackRotated = now.UnixMilli()
		changed = true
	}
	if len(m.acct.OneTimeKeys()) == 0 {
		n := 0
		if counts != nil {
			n = OneTimeKeyTarget - counts[algSignedCurve]
		} else if m.meta.LastOTKUpload == 0 {
			n = OneTimeKeyTarget // first upload
		}
		if n > 0 && (m.meta.LastOTKUpload == 0 || now.Sub(time.UnixMilli(m.meta.LastOTKUpload)) >= OTKUploadInterval) {
			if err := m.acct.GenerateOneTimeKeys(m.rand, n); err != nil {
				return fmt.Errorf("e2ee: generate one-time keys: %w", err)
			}
			m.meta.LastOTKUpload = now.UnixMilli()
			changed = true
		}
	}
	body := map[string]any{}
	if !m.meta.DeviceKeysPosted {
		body["device_keys"] = json.RawMessage(m.devKeys)
	}
	if otks := m.acct.OneTimeKeys(); len(otks) > 0 {
		o := map[string]any{}
		for _, k := range otks {
			o[algSignedCurve+":"+k.ID] = m.signOwn(map[string]any{"key": k.Key.String()})
		}
		body["one_time_keys"] = o
	}
	if fk, ok := m.acct.UnpublishedFallbackKey(); ok {
		body["fallback_keys"] = map[string]any{
			algSignedCurve + ":" + fk.ID: m.signOwn(map[string]any{"key": fk.Key.String(), "fallback": true}),
		}
	}
	if len(body) > 0 {
		if _, err := m.queueRequest(ch, RequestKeysUpload, "", body, nil); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		return m.putAccount(ch)
	}
	return nil
}

func (m *Machine) uploadDone(_ context.Context, _ *Changes, _ *Request, resp []byte) error {
	var r struct {
		Counts map[string]int `json:"one_time_key_counts"`
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return fmt.Errorf("e2ee: keys/upload response: %w: %v", ErrBadResponse, err)
	}
	// Only now, after the server accepted them, are the keys published.
	m.acct.MarkKeysAsPublished()
	m.meta.DeviceKeysPosted = true
	return nil
}
