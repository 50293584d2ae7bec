package keys

import "errors"

var (
	// ErrInvalidKey reports a key or signature of the wrong length or encoding.
	ErrInvalidKey = errors.New("keys: invalid key encoding or length")
	// ErrInvalidBase64 reports text that is not unpadded standard base64.
	ErrInvalidBase64 = errors.New("keys: invalid unpadded base64")
	// ErrNonContributory reports an X25519 agreement whose result is all
	// zeros: the peer sent a low-order point, and the "shared" secret would
	// be known to anyone.
	ErrNonContributory = errors.New("keys: non-contributory Curve25519 key agreement")
	// ErrBadSignature reports an Ed25519 signature that does not verify.
	ErrBadSignature = errors.New("keys: Ed25519 signature does not verify")
	// ErrWeakPublicKey reports an Ed25519 public key of small order, which
	// could make a signature verify for many messages.
	ErrWeakPublicKey = errors.New("keys: Ed25519 public key has small order")
)
