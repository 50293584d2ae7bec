package keys

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"myelin/api"
	"myelin/canonicaljson"
	mkeys "myelin/keys"
	"myelin/server/storage"
)

// Bounds on what a client may upload in one request.
const (
	// MaxOneTimeKeysPerUpload bounds the one-time keys in one /keys/upload.
	MaxOneTimeKeysPerUpload = 1000
	// MaxStoredOneTimeKeys bounds the unclaimed one-time keys of one
	// algorithm stored for one device.
	MaxStoredOneTimeKeys = 10000
	// MaxFallbackKeysPerUpload bounds the fallback keys in one /keys/upload.
	MaxFallbackKeysPerUpload = 16
	// MaxKeyObjectSize bounds one key object (device keys, one-time key,
	// cross-signing key) in bytes.
	MaxKeyObjectSize = 16 << 10
	// MaxIDLength bounds algorithm names, key IDs, device IDs, event types
	// and transaction IDs.
	MaxIDLength = 255
	// MaxQueryUsers bounds the users in one /keys/query or /keys/claim.
	MaxQueryUsers = 10000
	// MaxClaims bounds the devices in one /keys/claim.
	MaxClaims = 20000
	// MaxToDeviceMessages bounds the messages in one sendToDevice.
	MaxToDeviceMessages = 20000
	// MaxToDeviceContent bounds one to-device message's content in bytes.
	MaxToDeviceContent = 65536
	// MaxSignatureUploads bounds the signed objects in one /keys/signatures/upload.
	MaxSignatureUploads = 1000
)

// Algorithm names the server looks at.
const (
	AlgSignedCurve25519 = "signed_curve25519"
	algEd25519          = "ed25519"
)

func badJSON(format string, a ...any) error { return api.BadJSON(fmt.Sprintf(format, a...)) }

func invalidParam(format string, a ...any) error {
	return api.InvalidParam(fmt.Sprintf(format, a...))
}

// object decodes raw as a JSON object of raw members.
func object(raw json.RawMessage, what string) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if !startsWithObject(raw) {
		return nil, badJSON("%s must be an object", what)
	}
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, badJSON("%s must be an object", what)
	}
	return m, nil
}

func startsWithObject(raw []byte) bool {
	t := bytes.TrimLeft(raw, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

// stringField decodes m[key] as a string; present reports whether it was set.
func stringField(m map[string]json.RawMessage, key, what string) (s string, present bool, err error) {
	raw, ok := m[key]
	if !ok {
		return "", false, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", true, badJSON("%s.%s must be a string", what, key)
	}
	return s, true, nil
}

func requireString(m map[string]json.RawMessage, key, what string) (string, error) {
	s, ok, err := stringField(m, key, what)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", api.MissingParam(fmt.Sprintf("%s.%s is required", what, key))
	}
	return s, nil
}

func validID(s string) bool {
	return s != "" && len(s) <= MaxIDLength && utf8.ValidString(s)
}

// signatures decodes a Matrix "signatures" object: user ID -> key ID -> signature.
func signatures(raw json.RawMessage, what string) (map[string]map[string]string, error) {
	var sigs map[string]map[string]string
	if err := json.Unmarshal(raw, &sigs); err != nil {
		return nil, badJSON("%s.signatures must map user IDs to key IDs to strings", what)
	}
	return sigs, nil
}

// ValidateDeviceKeys checks the shape of an uploaded device-keys object and
// that it describes the uploading device (threat model B1 rule 1: the inner
// user_id and device_id must equal the authenticated ones). It does not
// verify the self-signature: clients do that on every download.
func ValidateDeviceKeys(raw json.RawMessage, userID, deviceID string) error {
	if len(raw) > MaxKeyObjectSize {
		return api.TooLarge("device_keys too large")
	}
	m, err := object(raw, "device_keys")
	if err != nil {
		return err
	}
	uid, err := requireString(m, "user_id", "device_keys")
	if err != nil {
		return err
	}
	did, err := requireString(m, "device_id", "device_keys")
	if err != nil {
		return err
	}
	// The uploaded keys must belong to the authenticated device; anything else
	// would let one device publish keys under another's name.
	if uid != userID || did != deviceID {
		return invalidParam("device_keys.user_id and device_id must match the access token's user and device")
	}
	var algs []string
	if raw, ok := m["algorithms"]; !ok {
		return api.MissingParam("device_keys.algorithms is required")
	} else if err := json.Unmarshal(raw, &algs); err != nil {
		return badJSON("device_keys.algorithms must be a list of strings")
	}
	for _, a := range algs {
		if !validID(a) {
			return badJSON("device_keys.algorithms contains an invalid algorithm")
		}
	}
	var ks map[string]string
	if raw, ok := m["keys"]; !ok {
		return api.MissingParam("device_keys.keys is required")
	} else if err := json.Unmarshal(raw, &ks); err != nil || len(ks) == 0 {
		return badJSON("device_keys.keys must map key IDs to strings")
	}
	for kid := range ks {
		alg, id, ok := strings.Cut(kid, ":")
		if !ok || alg == "" || id != deviceID {
			return badJSON("device_keys.keys must be named <algorithm>:<device_id>")
		}
	}
	edKey, ok := ks[algEd25519+":"+deviceID]
	if !ok {
		return badJSON("device_keys.keys must contain the device's ed25519 key")
	}
	if _, err := mkeys.ParseEd25519PublicKey(edKey); err != nil {
		return badJSON("device_keys ed25519 key is not a valid key")
	}
	raw, ok = m["signatures"]
	if !ok {
		return api.MissingParam("device_keys.signatures is required")
	}
	sigs, err := signatures(raw, "device_keys")
	if err != nil {
		return err
	}
	if _, ok := sigs[userID][algEd25519+":"+deviceID]; !ok {
		return badJSON("device_keys must be signed by the device's ed25519 key")
	}
	return nil
}

// ParseOneTimeKeys validates one_time_keys or fallback_keys of an upload:
// names are <algorithm>:<key_id>, values a string or a key object with "key"
// and "signatures". fallback requires at most one key per algorithm.
func ParseOneTimeKeys(raw json.RawMessage, field string, fallback bool) ([]storage.OneTimeKey, error) {
	if isNull(raw) {
		return nil, nil
	}
	m, err := object(raw, field)
	if err != nil {
		return nil, err
	}
	limit := MaxOneTimeKeysPerUpload
	if fallback {
		limit = MaxFallbackKeysPerUpload
	}
	if len(m) > limit {
		return nil, invalidParam("too many %s (at most %d)", field, limit)
	}
	out := make([]storage.OneTimeKey, 0, len(m))
	seen := make(map[string]bool)
	for name, v := range m {
		alg, kid, ok := strings.Cut(name, ":")
		if !ok || !validID(alg) || !validID(kid) {
			return nil, badJSON("%s must be named <algorithm>:<key_id>", field)
		}
		if len(v) > MaxKeyObjectSize {
			return nil, api.TooLarge(field + " entry too large")
		}
		if err := validateKeyObject(v, field); err != nil {
			return nil, err
		}
		if fallback {
			if seen[alg] {
				return nil, invalidParam("%s: at most one key per algorithm", field)
			}
			seen[alg] = true
		}
		c, err := compact(v)
		if err != nil {
			return nil, badJSON("%s entry is not valid JSON", field)
		}
		out = append(out, storage.OneTimeKey{Algorithm: alg, KeyID: kid, JSON: c})
	}
	return out, nil
}

func validateKeyObject(v json.RawMessage, field string) error {
	var s string
	if json.Unmarshal(v, &s) == nil {
		if s == "" {
			return badJSON("%s entry must not be empty", field)
		}
		return nil
	}
	o, err := object(v, field+" entry")
	if err != nil {
		return badJSON("%s entries must be strings or key objects", field)
	}
	if k, err := requireString(o, "key", field); err != nil || k == "" {
		return badJSON("%s entries need a key", field)
	}
	if sr, ok := o["signatures"]; ok {
		if _, err := signatures(sr, field); err != nil {
			return err
		}
	}
	return nil
}

func compact(raw json.RawMessage) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// ParseCrossSigningKey validates an uploaded cross-signing key of the given
// usage belonging to userID and returns it with its public key.
func ParseCrossSigningKey(raw json.RawMessage, userID, usage string) (storage.CrossSigningKey, error) {
	var zero storage.CrossSigningKey
	what := usage + "_key"
	if len(raw) > MaxKeyObjectSize {
		return zero, api.TooLarge(what + " too large")
	}
	m, err := object(raw, what)
	if err != nil {
		return zero, err
	}
	uid, err := requireString(m, "user_id", what)
	if err != nil {
		return zero, err
	}
	if uid != userID {
		return zero, invalidParam("%s.user_id must be the uploading user", what)
	}
	var usages []string
	if ur, ok := m["usage"]; !ok {
		return zero, api.MissingParam(what + ".usage is required")
	} else if err := json.Unmarshal(ur, &usages); err != nil {
		return zero, badJSON("%s.usage must be a list of strings", what)
	}
	found := false
	for _, u := range usages {
		found = found || u == usage
	}
	if !found {
		return zero, invalidParam("%s.usage must contain %q", what, usage)
	}
	var ks map[string]string
	if kr, ok := m["keys"]; !ok {
		return zero, api.MissingParam(what + ".keys is required")
	} else if err := json.Unmarshal(kr, &ks); err != nil {
		return zero, badJSON("%s.keys must map key IDs to strings", what)
	}
	if len(ks) != 1 {
		return zero, invalidParam("%s.keys must have exactly one key", what)
	}
	var pub string
	for kid, v := range ks {
		alg, p, _ := strings.Cut(kid, ":")
		if alg != algEd25519 || p != v {
			return zero, invalidParam("%s.keys must be {\"ed25519:<key>\": \"<key>\"}", what)
		}
		if _, err := mkeys.ParseEd25519PublicKey(v); err != nil {
			return zero, invalidParam("%s is not a valid ed25519 key", what)
		}
		pub = v
	}
	if sr, ok := m["signatures"]; ok {
		if _, err := signatures(sr, what); err != nil {
			return zero, err
		}
	}
	c, err := compact(raw)
	if err != nil {
		return zero, badJSON("%s is not valid JSON", what)
	}
	return storage.CrossSigningKey{UserID: userID, Usage: usage, PublicKey: pub, JSON: c}, nil
}

// verifySignature checks that obj carries a valid signature by
// signerUserID's key "ed25519:<keyName>" whose public key is pub, over the
// canonical JSON of obj without "signatures" and "unsigned".
func verifySignature(obj json.RawMessage, signerUserID, keyName, pub string) bool {
	m, err := object(obj, "signed object")
	if err != nil {
		return false
	}
	sr, ok := m["signatures"]
	if !ok {
		return false
	}
	sigs, err := signatures(sr, "signed object")
	if err != nil {
		return false
	}
	sigStr, ok := sigs[signerUserID][algEd25519+":"+keyName]
	if !ok {
		return false
	}
	return verifyWith(obj, sigStr, pub)
}

func verifyWith(obj json.RawMessage, sigStr, pub string) bool {
	pk, err := mkeys.ParseEd25519PublicKey(pub)
	if err != nil {
		return false
	}
	sig, err := mkeys.ParseEd25519Signature(sigStr)
	if err != nil {
		return false
	}
	msg, err := canonicaljson.CanonicalizeWithout(obj, "signatures", "unsigned")
	if err != nil {
		return false
	}
	return pk.Verify(msg, sig) == nil
}

// sameSignedContent reports whether a and b are equal apart from their
// "signatures" and "unsigned" members (compared in canonical form).
func sameSignedContent(a, b json.RawMessage) bool {
	ca, err := canonicaljson.CanonicalizeWithout(a, "signatures", "unsigned")
	if err != nil {
		return false
	}
	cb, err := canonicaljson.CanonicalizeWithout(b, "signatures", "unsigned")
	if err != nil {
		return false
	}
	return bytes.Equal(ca, cb) // public data: no constant time needed
}
