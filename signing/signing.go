package signing

import (
	"errors"
	"fmt"
	"strings"

	"myelin/canonicaljson"
	"myelin/keys"
)

// Ed25519 is the only signing algorithm Matrix defines; key IDs have the form
// "ed25519:<key identifier>".
const Ed25519 = "ed25519"

// Sentinel errors, wrapped by [*SignatureError] and by parse errors.
var (
	// ErrMissingSignature: the object carries no signature by that signer
	// under that key ID.
	ErrMissingSignature = errors.New("signing: signature missing")
	// ErrMalformedSignature: the signatures member, the signer's entry or the
	// signature itself has the wrong shape, base64 or length.
	ErrMalformedSignature = errors.New("signing: signature malformed")
	// ErrInvalidSignature: the signature is well-formed but does not verify
	// under the given public key over the object's canonical form.
	ErrInvalidSignature = errors.New("signing: signature invalid")
	// ErrInvalidObject: the input is not a strictly valid JSON object.
	ErrInvalidObject = errors.New("signing: invalid JSON object")
	// ErrInvalidKeyID: a key ID is not of the form "ed25519:<id>".
	ErrInvalidKeyID = errors.New("signing: invalid key ID")
)

// SignatureError says which signature failed and how. Signer and KeyID are
// the values the caller asked about.
type SignatureError struct {
	Signer string
	KeyID  string
	Reason error // ErrMissingSignature, ErrMalformedSignature or ErrInvalidSignature
	Cause  error // underlying error (e.g. from package keys), may be nil
}

// Error implements the error interface.
func (e *SignatureError) Error() string {
	s := fmt.Sprintf("signing: signature by %q with key %q: %s", e.Signer, e.KeyID, strings.TrimPrefix(e.Reason.Error(), "signing: signature "))
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns the reason and the cause.
func (e *SignatureError) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Reason, e.Cause}
	}
	return []error{e.Reason}
}

// Object is a parsed JSON object ready for signature checks. Its canonical
// signed form is computed once.
type Object struct {
	fields map[string]any
	signed []byte
}

// Parse decodes raw strictly (see package canonicaljson, default bounds) and
// prepares it for verification. The top-level "signatures" member, if
// present, must be an object of objects of strings.
func Parse(raw []byte) (*Object, error) {
	fields, err := canonicaljson.ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidObject, err)
	}
	return NewObject(fields)
}

// NewObject prepares an already decoded object (from
// canonicaljson.ParseObject or canonicaljson.Options.ParseObject) for
// verification. The caller must not modify fields afterwards.
func NewObject(fields map[string]any) (*Object, error) {
	if _, err := signaturesOf(fields); err != nil {
		return nil, err
	}
	signed, err := signedBytes(fields)
	if err != nil {
		return nil, err
	}
	return &Object{fields: fields, signed: signed}, nil
}

// signedBytes is the canonical form without signatures and unsigned.
func signedBytes(fields map[string]any) ([]byte, error) {
	stripped := make(map[string]any, len(fields))
	for k, v := range fields {
		if k != "signatures" && k != "unsigned" {
			stripped[k] = v
		}
	}
	b, err := canonicaljson.Marshal(stripped)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidObject, err)
	}
	return b, nil
}

// signaturesOf returns the signatures member, checking its shape.
func signaturesOf(fields map[string]any) (map[string]any, error) {
	raw, ok := fields["signatures"]
	if !ok {
		return nil, nil
	}
	sigs, ok := raw.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: \"signatures\" is not an object", ErrMalformedSignature)
	}
	for _, entry := range sigs {
		m, ok := entry.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%w: a signer's entry is not an object", ErrMalformedSignature)
		}
		for _, s := range m {
			if _, ok := s.(string); !ok {
				return nil, fmt.Errorf("%w: a signature is not a string", ErrMalformedSignature)
			}
		}
	}
	return sigs, nil
}

// Fields returns the decoded object (map[string]any, []any, string, int64,
// bool, nil). The caller must not modify it.
func (o *Object) Fields() map[string]any { return o.fields }

// SignedBytes returns the canonical JSON that signatures cover. The caller
// must not modify it.
func (o *Object) SignedBytes() []byte { return o.signed }

// Signature returns the raw signature string by signer under keyID, if any.
func (o *Object) Signature(signer, keyID string) (string, bool) {
	sigs, _ := o.fields["signatures"].(map[string]any)
	entry, _ := sigs[signer].(map[string]any)
	s, ok := entry[keyID].(string)
	return s, ok
}

// KeyIDs returns the key IDs under which signer has signed, in no
// particular order.
func (o *Object) KeyIDs(signer string) []string {
	sigs, _ := o.fields["signatures"].(map[string]any)
	entry, _ := sigs[signer].(map[string]any)
	ids := make([]string, 0, len(entry))
	for k := range entry {
		ids = append(ids, k)
	}
	return ids
}

// Verify checks the signature by signer under keyID with pk.
func (o *Object) Verify(signer, keyID string, pk keys.Ed25519PublicKey) error {
	fail := func(reason, cause error) error {
		return &SignatureError{Signer: signer, KeyID: keyID, Reason: reason, Cause: cause}
	}
	if !strings.HasPrefix(keyID, Ed25519+":") {
		// We understand no other algorithm: by the spec's rule such a
		// signature cannot be checked, so it counts as missing.
		return fail(ErrMissingSignature, ErrInvalidKeyID)
	}
	s, ok := o.Signature(signer, keyID)
	if !ok {
		return fail(ErrMissingSignature, nil)
	}
	sig, err := keys.ParseEd25519Signature(s)
	if err != nil {
		return fail(ErrMalformedSignature, err)
	}
	if err := pk.Verify(o.signed, sig); err != nil {
		return fail(ErrInvalidSignature, err)
	}
	return nil
}

// Verify parses obj and checks the signature by signer (a user ID or server
// name) under keyID (for example "ed25519:DEVICEID") with pk.
func Verify(obj []byte, signer, keyID string, pk keys.Ed25519PublicKey) error {
	o, err := Parse(obj)
	if err != nil {
		var se *SignatureError
		if errors.As(err, &se) {
			return err
		}
		return &SignatureError{Signer: signer, KeyID: keyID, Reason: ErrMalformedSignature, Cause: err}
	}
	return o.Verify(signer, keyID, pk)
}

// Sign signs obj as signer under keyID ("ed25519:<id>") with sk and returns
// the object, canonically encoded, with the new signature merged into any
// existing ones. "unsigned" is kept and not covered by the signature.
func Sign(obj []byte, signer, keyID string, sk Signer) ([]byte, error) {
	fields, err := canonicaljson.ParseObject(obj)
	if err != nil {
		return nil, fmt.Errorf("signing: sign: %w: %w", ErrInvalidObject, err)
	}
	return SignFields(fields, signer, keyID, sk)
}

// Signer makes Ed25519 signatures: a *keys.Ed25519SecretKey, or an Olm
// account (whose device key stays inside it).
type Signer interface {
	Sign(msg []byte) keys.Ed25519Signature
}

// SignFields is [Sign] for an already decoded object (as from
// canonicaljson.ParseObject). fields gains the signature.
func SignFields(fields map[string]any, signer, keyID string, sk Signer) ([]byte, error) {
	if keyID == Ed25519+":" || !strings.HasPrefix(keyID, Ed25519+":") {
		return nil, fmt.Errorf("signing: sign: %w", ErrInvalidKeyID)
	}
	if signer == "" {
		return nil, fmt.Errorf("signing: sign: empty signer")
	}
	sigs, err := signaturesOf(fields)
	if err != nil {
		return nil, fmt.Errorf("signing: sign: %w", err)
	}
	msg, err := signedBytes(fields)
	if err != nil {
		return nil, fmt.Errorf("signing: sign: %w", err)
	}
	sig := sk.Sign(msg)
	if sigs == nil {
		sigs = map[string]any{}
		fields["signatures"] = sigs
	}
	entry, _ := sigs[signer].(map[string]any)
	if entry == nil {
		entry = map[string]any{}
		sigs[signer] = entry
	}
	entry[keyID] = sig.String()
	out, err := canonicaljson.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("signing: sign: %w", err)
	}
	return out, nil
}
