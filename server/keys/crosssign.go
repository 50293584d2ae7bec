package keys

import (
	"context"
	"encoding/json"
	"strings"

	"myelin/api"
	"myelin/canonicaljson"
	"myelin/server/storage"
)

// CrossSigningRequest is the body of POST /keys/device_signing/upload (the
// "auth" member is the caller's business).
type CrossSigningRequest struct {
	MasterKey      json.RawMessage `json:"master_key"`
	SelfSigningKey json.RawMessage `json:"self_signing_key"`
	UserSigningKey json.RawMessage `json:"user_signing_key"`
}

// CrossSigningUpload is a validated cross-signing upload, ready for
// [Service.CommitCrossSigning].
type CrossSigningUpload struct {
	userID string
	keys   []storage.CrossSigningKey
	// NeedsAuth reports whether the upload needs user-interactive
	// authentication: it does unless the user has no master key yet, or every
	// uploaded key equals the stored one (an idempotent retry).
	NeedsAuth bool
	noop      bool
}

// PrepareCrossSigning validates a cross-signing upload by userID: the shape of
// each key, the self-signing and user-signing keys signed by the master key
// (the uploaded one, else the stored one), and that no public key equals one
// of the user's device IDs.
func (s *Service) PrepareCrossSigning(ctx context.Context, userID string, req CrossSigningRequest) (*CrossSigningUpload, error) {
	up := &CrossSigningUpload{userID: userID}
	for _, f := range []struct {
		raw   json.RawMessage
		usage string
	}{
		{req.MasterKey, storage.UsageMaster},
		{req.SelfSigningKey, storage.UsageSelfSigning},
		{req.UserSigningKey, storage.UsageUserSigning},
	} {
		if isNull(f.raw) {
			continue
		}
		k, err := ParseCrossSigningKey(f.raw, userID, f.usage)
		if err != nil {
			return nil, err
		}
		up.keys = append(up.keys, k)
	}
	existing, err := s.store.CrossSigningKeys(ctx, []string{userID})
	if err != nil {
		return nil, internal("cross-signing keys", err)
	}
	stored := make(map[string]storage.CrossSigningKey, len(existing))
	for _, k := range existing {
		stored[k.Usage] = k
	}
	master, hasMaster := stored[storage.UsageMaster]
	for _, k := range up.keys {
		if k.Usage == storage.UsageMaster {
			master, hasMaster = k, true
		}
	}
	for _, k := range up.keys {
		if k.Usage == storage.UsageMaster {
			continue
		}
		if !hasMaster {
			return nil, api.MissingParam("no master key available")
		}
		// Spec: self-signing and user-signing keys must be signed by the
		// master key; a server that stored an unsigned one would advertise
		// keys that every client rejects.
		if !verifySignature(k.JSON, userID, master.PublicKey, master.PublicKey) {
			return nil, api.NewError(400, api.ErrCodeInvalidSignature, k.Usage+" key is not signed by the master key")
		}
	}
	// UIA rule (spec v1.11+, MSC3967): free when there is no master key yet,
	// or when the request contains no new keys.
	_, hadMaster := stored[storage.UsageMaster]
	same := true
	for _, k := range up.keys {
		old, ok := stored[k.Usage]
		if !ok || !sameJSON(old.JSON, k.JSON) {
			same = false
		}
	}
	up.noop = hadMaster && same
	up.NeedsAuth = hadMaster && !same
	if up.noop {
		return up, nil
	}
	// A cross-signing public key equal to a device ID would make
	// "ed25519:<id>" ambiguous in signatures (spec: 403).
	if s.devices != nil && len(up.keys) > 0 {
		devs, err := s.devices.Devices(ctx, userID)
		if err != nil {
			return nil, internal("devices", err)
		}
		for _, d := range devs {
			for _, k := range up.keys {
				if k.PublicKey == d.DeviceID {
					return nil, api.Forbidden("key ID in use by a device")
				}
			}
		}
	}
	return up, nil
}

func sameJSON(a, b json.RawMessage) bool {
	ca, err1 := canonicaljson.Canonicalize(a)
	cb, err2 := canonicaljson.Canonicalize(b)
	return err1 == nil && err2 == nil && string(ca) == string(cb)
}

// CommitCrossSigning stores a prepared upload (the caller has completed
// user-interactive authentication if NeedsAuth was set).
func (s *Service) CommitCrossSigning(ctx context.Context, up *CrossSigningUpload) error {
	if up.noop || len(up.keys) == 0 {
		return nil
	}
	changes, err := s.store.PutCrossSigningKeys(ctx, up.userID, up.keys)
	if err != nil {
		return internal("put cross-signing keys", err)
	}
	s.wakeChanges(ctx, changes)
	return nil
}

// SignaturesResponse is the response of POST /keys/signatures/upload.
type SignaturesResponse struct {
	Failures map[string]map[string]any `json:"failures"`
}

func failure(code, msg string) map[string]string {
	return map[string]string{"errcode": code, "error": msg}
}

// UploadSignatures handles POST /keys/signatures/upload by requester: for
// each signed object, the object must equal the stored key apart from
// signatures, and the new signature must verify with the key allowed to make
// it: the requester's self-signing key on their own devices, their devices
// on their own master key, their user-signing key on other users' master
// keys. Valid signatures are stored; the rest are reported in failures.
func (s *Service) UploadSignatures(ctx context.Context, requester string, req map[string]map[string]json.RawMessage) (*SignaturesResponse, error) {
	resp := &SignaturesResponse{Failures: map[string]map[string]any{}}
	n := 0
	users := []string{requester}
	for u, objs := range req {
		n += len(objs)
		if u != requester {
			users = append(users, u)
		}
	}
	if n > MaxSignatureUploads {
		return nil, api.InvalidParam("too many signed objects")
	}
	csks, err := s.store.CrossSigningKeys(ctx, users)
	if err != nil {
		return nil, internal("cross-signing keys", err)
	}
	cs := map[string]map[string]storage.CrossSigningKey{}
	for _, k := range csks {
		if cs[k.UserID] == nil {
			cs[k.UserID] = map[string]storage.CrossSigningKey{}
		}
		cs[k.UserID][k.Usage] = k
	}
	own, err := s.store.DeviceKeys(ctx, map[string][]string{requester: nil})
	if err != nil {
		return nil, internal("device keys", err)
	}
	ownDevices := make(map[string]json.RawMessage, len(own))
	for _, d := range own {
		ownDevices[d.DeviceID] = d.JSON
	}
	fail := func(u, key, code, msg string) {
		if resp.Failures[u] == nil {
			resp.Failures[u] = map[string]any{}
		}
		resp.Failures[u][key] = failure(code, msg)
	}
	var good []storage.KeySignature
	for target, objs := range req {
		for keyID, obj := range objs {
			sigs, code, msg := s.checkSignedObject(requester, target, keyID, obj, cs, ownDevices)
			if code != "" {
				fail(target, keyID, code, msg)
				continue
			}
			good = append(good, sigs...)
		}
	}
	if len(good) > 0 {
		changes, err := s.store.PutSignatures(ctx, good)
		if err != nil {
			return nil, internal("put signatures", err)
		}
		s.wakeChanges(ctx, changes)
	}
	return resp, nil
}

// checkSignedObject returns the new signatures in obj that may be stored, or
// an error code and message.
func (s *Service) checkSignedObject(requester, target, keyID string, obj json.RawMessage,
	cs map[string]map[string]storage.CrossSigningKey, ownDevices map[string]json.RawMessage,
) ([]storage.KeySignature, string, string) {
	if len(obj) > MaxKeyObjectSize {
		return nil, api.ErrCodeTooLarge, "signed object too large"
	}
	m, err := object(obj, "signed object")
	if err != nil {
		return nil, api.ErrCodeBadJSON, "signed object must be an object"
	}
	sr, ok := m["signatures"]
	if !ok {
		return nil, api.ErrCodeInvalidSignature, "no signatures"
	}
	all, err := signatures(sr, "signed object")
	if err != nil {
		return nil, api.ErrCodeBadJSON, "invalid signatures"
	}
	mine := all[requester]
	sig := func(signerKey, sigStr string) storage.KeySignature {
		return storage.KeySignature{TargetUserID: target, TargetKeyID: keyID, SignerUserID: requester,
			SignerKeyID: algEd25519 + ":" + signerKey, Signature: sigStr}
	}
	if target != requester {
		// Another user's key: only their master key, signed by our user-signing key.
		msk, ok := cs[target][storage.UsageMaster]
		if !ok || msk.PublicKey != keyID {
			return nil, api.ErrCodeNotFound, "unknown key"
		}
		usk, ok := cs[requester][storage.UsageUserSigning]
		if !ok {
			return nil, api.ErrCodeInvalidSignature, "no user-signing key"
		}
		if !sameSignedContent(obj, msk.JSON) {
			return nil, api.ErrCodeInvalidSignature, "object does not match the stored key"
		}
		sg, ok := mine[algEd25519+":"+usk.PublicKey]
		if !ok || !verifyWith(obj, sg, usk.PublicKey) {
			return nil, api.ErrCodeInvalidSignature, "invalid signature"
		}
		return []storage.KeySignature{sig(usk.PublicKey, sg)}, "", ""
	}
	if msk, ok := cs[requester][storage.UsageMaster]; ok && msk.PublicKey == keyID {
		// Our own master key, signed by our devices.
		if !sameSignedContent(obj, msk.JSON) {
			return nil, api.ErrCodeInvalidSignature, "object does not match the stored key"
		}
		var out []storage.KeySignature
		for kid, sg := range mine {
			alg, dev, _ := strings.Cut(kid, ":")
			if alg != algEd25519 || dev == msk.PublicKey {
				continue
			}
			dk, ok := ownDevices[dev]
			if !ok {
				return nil, api.ErrCodeInvalidSignature, "signature by an unknown device"
			}
			pub := deviceEd25519(dk, dev)
			if pub == "" || !verifyWith(obj, sg, pub) {
				return nil, api.ErrCodeInvalidSignature, "invalid signature"
			}
			out = append(out, sig(dev, sg))
		}
		if len(out) == 0 {
			return nil, api.ErrCodeInvalidSignature, "no device signature"
		}
		return out, "", ""
	}
	// One of our devices, signed by our self-signing key.
	dk, ok := ownDevices[keyID]
	if !ok {
		return nil, api.ErrCodeNotFound, "unknown device"
	}
	ssk, ok := cs[requester][storage.UsageSelfSigning]
	if !ok {
		return nil, api.ErrCodeInvalidSignature, "no self-signing key"
	}
	if !sameSignedContent(obj, dk) {
		return nil, api.ErrCodeInvalidSignature, "object does not match the stored device keys"
	}
	sg, ok := mine[algEd25519+":"+ssk.PublicKey]
	if !ok || !verifyWith(obj, sg, ssk.PublicKey) {
		return nil, api.ErrCodeInvalidSignature, "invalid signature"
	}
	return []storage.KeySignature{sig(ssk.PublicKey, sg)}, "", ""
}

// deviceEd25519 returns the ed25519 key of stored device keys, or "".
func deviceEd25519(dk json.RawMessage, deviceID string) string {
	var v struct {
		Keys map[string]string `json:"keys"`
	}
	if json.Unmarshal(dk, &v) != nil {
		return ""
	}
	return v.Keys[algEd25519+":"+deviceID]
}
