package crosssign

import (
	"errors"
	"fmt"
	"strings"

	"myelin/canonicaljson"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// Usage is the role of a cross-signing key.
type Usage string

// The three cross-signing key usages.
const (
	UsageMaster      Usage = "master"
	UsageSelfSigning Usage = "self_signing"
	UsageUserSigning Usage = "user_signing"
)

// MaxObjectSize bounds the size of a single key or device object we parse.
// Real objects are well under 4 KiB even with many signatures.
const MaxObjectSize = 64 << 10

var parseOpts = canonicaljson.Options{MaxSize: MaxObjectSize, MaxDepth: 16}

// Sentinel errors for key objects.
var (
	// ErrMalformedKey: the CrossSigningKey object is not well-formed (bad
	// JSON, missing fields, not exactly one ed25519 key, key ID and value
	// differ, unknown or multiple usages).
	ErrMalformedKey = errors.New("crosssign: malformed cross-signing key")
	// ErrWrongUsage: the key has a different usage than required.
	ErrWrongUsage = errors.New("crosssign: cross-signing key has the wrong usage")
	// ErrWrongUser: the key's user_id is not the user it was served for.
	ErrWrongUser = errors.New("crosssign: cross-signing key belongs to another user")
	// ErrNotSigned: a required signature is missing or does not verify.
	ErrNotSigned = errors.New("crosssign: required signature missing or invalid")
	// ErrNoSecretKey: the operation needs a private key that is not held.
	ErrNoSecretKey = errors.New("crosssign: private key not available")
	// ErrKeyMismatch: the object holds a different public key than expected.
	ErrKeyMismatch = errors.New("crosssign: public key differs from the expected key")
)

// Key is a parsed, well-formed CrossSigningKey object. Parsing does not
// check any signature; use [Key.VerifySignedBy].
type Key struct {
	UserID    id.UserID
	Usage     Usage
	PublicKey keys.Ed25519PublicKey
	obj       *signing.Object
}

// KeyID returns the key's ID, "ed25519:" followed by the unpadded base64 of
// the public key.
func (k *Key) KeyID() string { return keyIDOf(k.PublicKey) }

func keyIDOf(pk keys.Ed25519PublicKey) string { return signing.Ed25519 + ":" + pk.String() }

// Object returns the parsed signed object (for its signatures).
func (k *Key) Object() *signing.Object { return k.obj }

// MarshalJSON returns the object's canonical JSON, signatures included.
func (k *Key) MarshalJSON() ([]byte, error) { return canonicaljson.Marshal(k.obj.Fields()) }

// VerifySignedBy checks that signer (a user ID) signed this key object with
// the Ed25519 key pub, under key ID "ed25519:<pub>".
func (k *Key) VerifySignedBy(signer id.UserID, pub keys.Ed25519PublicKey) error {
	if err := k.obj.Verify(signer.String(), keyIDOf(pub), pub); err != nil {
		return fmt.Errorf("%w: %w", ErrNotSigned, err)
	}
	return nil
}

// ParseKey parses a CrossSigningKey object strictly: exactly one usage out
// of master, self_signing and user_signing; exactly one entry in keys, of the
// form "ed25519:<b64>": "<b64>" with both the same valid public key; a
// user_id in the (historical, lenient) user ID grammar.
func ParseKey(raw []byte) (*Key, error) {
	fields, err := parseOpts.ParseObject(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
	}
	return keyFromFields(fields)
}

func keyFromFields(fields map[string]any) (*Key, error) {
	bad := func(why string) error { return fmt.Errorf("%w: %s", ErrMalformedKey, why) }
	uid, ok := fields["user_id"].(string)
	if !ok {
		return nil, bad("user_id missing or not a string")
	}
	user, err := id.ParseUserIDLenient(uid)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
	}
	usages, ok := fields["usage"].([]any)
	if !ok || len(usages) != 1 {
		return nil, bad("usage must be an array of exactly one usage")
	}
	us, _ := usages[0].(string)
	usage := Usage(us)
	switch usage {
	case UsageMaster, UsageSelfSigning, UsageUserSigning:
	default:
		return nil, bad("unknown usage")
	}
	km, ok := fields["keys"].(map[string]any)
	if !ok || len(km) != 1 {
		return nil, bad("keys must hold exactly one key")
	}
	var pk keys.Ed25519PublicKey
	for kid, v := range km {
		val, ok := v.(string)
		if !ok {
			return nil, bad("key value is not a string")
		}
		alg, b64, _ := strings.Cut(kid, ":")
		if alg != signing.Ed25519 || b64 != val {
			return nil, bad("key ID must be \"ed25519:\" followed by the key itself")
		}
		if pk, err = keys.ParseEd25519PublicKey(val); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
		}
	}
	obj, err := signing.NewObject(fields)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedKey, err)
	}
	return &Key{UserID: user, Usage: usage, PublicKey: pk, obj: obj}, nil
}

// checkKey parses raw as a key of the given usage belonging to user.
func checkKey(raw []byte, usage Usage, user id.UserID) (*Key, error) {
	k, err := ParseKey(raw)
	if err != nil {
		return nil, err
	}
	if k.Usage != usage {
		return nil, fmt.Errorf("%w: want %s", ErrWrongUsage, usage)
	}
	if k.UserID != user {
		return nil, ErrWrongUser
	}
	return k, nil
}
