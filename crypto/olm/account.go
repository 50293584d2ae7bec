package olm

import (
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"myelin/keys"
)

const (
	// MaxOneTimeKeys is what [Account.MaxNumberOfOneTimeKeys] returns: 100,
	// as libolm's olm_account_max_number_of_one_time_keys. Keep about half
	// of it published on the server.
	MaxOneTimeKeys = 100
	// MaxStoredOneTimeKeys bounds the private one-time keys an account
	// keeps. When more are generated the oldest are dropped. It is larger
	// than MaxOneTimeKeys (as in vodozemac, which keeps 5000) because the
	// server's count can run ahead of pre-key messages still in flight.
	MaxStoredOneTimeKeys = 5000
)

// OneTimeKey is the public half of a one-time or fallback key and its key
// ID, as published under "signed_curve25519:<ID>".
type OneTimeKey struct {
	// ID is the key ID: like libolm, the unpadded base64 of a big-endian
	// uint32 counter starting at 1 and shared with fallback keys
	// ("AAAAAQ", "AAAAAg", ...). IDs are opaque to everyone else.
	ID string
	// Key is the Curve25519 public key.
	Key keys.Curve25519PublicKey
}

type storedKey struct {
	id        uint32
	key       *keys.Curve25519SecretKey
	published bool
}

func (k storedKey) public() OneTimeKey {
	return OneTimeKey{ID: keyID(k.id), Key: k.key.PublicKey()}
}

func keyID(n uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return keys.EncodeBase64(b[:])
}

// Account is a device's Olm identity: its Curve25519 identity key, its
// Ed25519 fingerprint key, its one-time keys and its fallback keys. Persist
// it with [Account.Pickle] after every change.
//
// An Account is not safe for concurrent use. Its secrets never appear in
// fmt or slog output.
type Account struct {
	_ noCompare

	identity *keys.Curve25519SecretKey
	signing  *keys.Ed25519SecretKey

	nextKeyID    uint32      // the last key ID handed out; IDs start at 1
	oneTimeKeys  []storedKey // oldest first
	fallback     *storedKey  // current fallback key
	prevFallback *storedKey  // the one before it
}

// NewAccount creates an account, reading 64 bytes from rand: [0:32] is the
// Ed25519 seed and [32:64] the Curve25519 private key, as in libolm's
// olm_create_account.
func NewAccount(rand io.Reader) (*Account, error) {
	var buf [64]byte
	if _, err := io.ReadFull(rand, buf[:]); err != nil {
		return nil, fmt.Errorf("olm: new account: %w", err)
	}
	defer clear(buf[:])
	signing, err := keys.NewEd25519SecretKeyFromSeed(buf[:32])
	if err != nil {
		return nil, fmt.Errorf("olm: new account: %w", err)
	}
	identity, err := keys.NewCurve25519SecretKey(buf[32:])
	if err != nil {
		return nil, fmt.Errorf("olm: new account: %w", err)
	}
	return &Account{identity: identity, signing: signing}, nil
}

// IdentityKeys returns the device's Curve25519 identity key (the Olm
// "sender_key") and its Ed25519 fingerprint key.
func (a *Account) IdentityKeys() (keys.Curve25519PublicKey, keys.Ed25519PublicKey) {
	return a.identity.PublicKey(), a.signing.PublicKey()
}

// Sign signs msg with the device's Ed25519 key.
func (a *Account) Sign(msg []byte) keys.Ed25519Signature { return a.signing.Sign(msg) }

// MaxNumberOfOneTimeKeys returns [MaxOneTimeKeys].
func (a *Account) MaxNumberOfOneTimeKeys() int { return MaxOneTimeKeys }

// GenerateOneTimeKeys generates n one-time keys, reading 32 bytes from rand
// for each (the raw X25519 private key, as libolm). If more than
// [MaxStoredOneTimeKeys] are then stored, the oldest are dropped. On error
// the account is unchanged.
func (a *Account) GenerateOneTimeKeys(rand io.Reader, n int) error {
	if n < 0 || n > MaxStoredOneTimeKeys {
		return fmt.Errorf("olm: generate one-time keys: %d: %w", n, ErrTooManyOneTimeKeys)
	}
	if n == 0 {
		return nil
	}
	buf := make([]byte, 32*n)
	defer clear(buf)
	if _, err := io.ReadFull(rand, buf); err != nil {
		return fmt.Errorf("olm: generate one-time keys: %w", err)
	}
	fresh := make([]storedKey, n)
	for i := range fresh {
		k, err := keys.NewCurve25519SecretKey(buf[32*i : 32*i+32])
		if err != nil {
			return fmt.Errorf("olm: generate one-time keys: %w", err)
		}
		fresh[i] = storedKey{id: a.nextKeyID + 1 + uint32(i), key: k}
	}
	a.nextKeyID += uint32(n)
	a.oneTimeKeys = append(a.oneTimeKeys, fresh...)
	if over := len(a.oneTimeKeys) - MaxStoredOneTimeKeys; over > 0 {
		for _, k := range a.oneTimeKeys[:over] {
			k.key.Wipe()
		}
		a.oneTimeKeys = slices.Delete(a.oneTimeKeys, 0, over)
	}
	return nil
}

// OneTimeKeys returns the one-time keys not yet marked as published, oldest
// first.
func (a *Account) OneTimeKeys() []OneTimeKey {
	var out []OneTimeKey
	for _, k := range a.oneTimeKeys {
		if !k.published {
			out = append(out, k.public())
		}
	}
	return out
}

// MarkKeysAsPublished marks the current one-time keys and the current
// fallback key as published, so [Account.OneTimeKeys] and
// [Account.UnpublishedFallbackKey] no longer return them.
func (a *Account) MarkKeysAsPublished() {
	for i := range a.oneTimeKeys {
		a.oneTimeKeys[i].published = true
	}
	if a.fallback != nil {
		a.fallback.published = true
	}
}

// GenerateFallbackKey generates a new fallback key, reading 32 bytes from
// rand. The current fallback key becomes the previous one (still usable for
// inbound sessions until [Account.ForgetOldFallbackKey]); the one before it
// is forgotten. On error the account is unchanged.
func (a *Account) GenerateFallbackKey(rand io.Reader) error {
	k, err := keys.GenerateCurve25519SecretKey(rand)
	if err != nil {
		return fmt.Errorf("olm: generate fallback key: %w", err)
	}
	a.nextKeyID++
	if a.prevFallback != nil {
		a.prevFallback.key.Wipe()
	}
	a.prevFallback = a.fallback
	a.fallback = &storedKey{id: a.nextKeyID, key: k}
	return nil
}

// UnpublishedFallbackKey returns the current fallback key if it has not
// been marked as published.
func (a *Account) UnpublishedFallbackKey() (OneTimeKey, bool) {
	if a.fallback == nil || a.fallback.published {
		return OneTimeKey{}, false
	}
	return a.fallback.public(), true
}

// FallbackKey returns the current fallback key, published or not.
func (a *Account) FallbackKey() (OneTimeKey, bool) {
	if a.fallback == nil {
		return OneTimeKey{}, false
	}
	return a.fallback.public(), true
}

// ForgetOldFallbackKey forgets the previous fallback key. Call it once
// pre-key messages made with it can no longer be in flight.
func (a *Account) ForgetOldFallbackKey() {
	if a.prevFallback != nil {
		a.prevFallback.key.Wipe()
		a.prevFallback = nil
	}
}

// NewOutboundSession starts a session to the device with identity key
// theirIdentityKey, using the one-time (or fallback) key theirOneTimeKey
// claimed from the server (check its signature first). It reads 64 bytes
// from rand: [0:32] is the base key E_A, [32:64] the first ratchet key T0,
// as libolm's olm_create_outbound_session.
func (a *Account) NewOutboundSession(rand io.Reader, theirIdentityKey, theirOneTimeKey keys.Curve25519PublicKey) (*Session, error) {
	var buf [64]byte
	if _, err := io.ReadFull(rand, buf[:]); err != nil {
		return nil, fmt.Errorf("olm: outbound session: %w", err)
	}
	defer clear(buf[:])
	base, err := keys.NewCurve25519SecretKey(buf[:32])
	if err != nil {
		return nil, fmt.Errorf("olm: outbound session: %w", err)
	}
	defer base.Wipe()
	ratchet, err := keys.NewCurve25519SecretKey(buf[32:])
	if err != nil {
		return nil, fmt.Errorf("olm: outbound session: %w", err)
	}

	// S = ECDH(I_A, E_B) || ECDH(E_A, I_B) || ECDH(E_A, E_B)
	var secret [96]byte
	defer clear(secret[:])
	for i, p := range []struct {
		sk  *keys.Curve25519SecretKey
		pub keys.Curve25519PublicKey
	}{{a.identity, theirOneTimeKey}, {base, theirIdentityKey}, {base, theirOneTimeKey}} {
		s, err := p.sk.SharedSecret(p.pub)
		if err != nil {
			ratchet.Wipe()
			return nil, fmt.Errorf("olm: outbound session: %w", err)
		}
		copy(secret[32*i:], s[:])
		clear(s[:])
	}
	root, ck := kdf64(nil, secret[:], infoRoot)
	s := newSession(a.identity.PublicKey(), base.PublicKey(), theirOneTimeKey)
	s.root = root
	s.sender = &senderChain{ratchet: ratchet, chain: chainKey{key: ck}}
	clear(root[:])
	clear(ck[:])
	return s, nil
}

// NewInboundSession creates a session from a pre-key message m sent by the
// device whose identity key is theirIdentityKey (the event's sender key).
// Check first whether an existing session [Session.MatchesInbound] the
// message.
//
// It looks up the private key of m's one-time key among the one-time keys,
// then the current and previous fallback keys, builds the session and
// decrypts the embedded message. Only if that succeeds does it remove the
// one-time key (a fallback key is never removed) and return the session and
// the plaintext; on any error the account is unchanged. Persist the account
// and the session together.
func (a *Account) NewInboundSession(theirIdentityKey keys.Curve25519PublicKey, m *PreKeyMessage) (*Session, []byte, error) {
	if m == nil || m.message == nil || len(m.message.raw) == 0 { // nil, or a zero value not made by a parser
		return nil, nil, fmt.Errorf("olm: inbound session: no message: %w", ErrInvalidMessage)
	}
	if m.identityKey != theirIdentityKey { // public values
		return nil, nil, fmt.Errorf("olm: inbound session: %w", ErrSenderKeyMismatch)
	}
	otkIndex := -1
	var otk *keys.Curve25519SecretKey
	for i := range a.oneTimeKeys {
		if a.oneTimeKeys[i].key.PublicKey() == m.oneTimeKey {
			otkIndex, otk = i, a.oneTimeKeys[i].key
			break
		}
	}
	if otk == nil {
		for _, f := range []*storedKey{a.fallback, a.prevFallback} {
			if f != nil && f.key.PublicKey() == m.oneTimeKey {
				otk = f.key
				break
			}
		}
	}
	if otk == nil {
		return nil, nil, fmt.Errorf("olm: inbound session: %w", ErrNoMatchingKey)
	}

	// The same S as the initiator's, with the roles of the keys swapped:
	// ECDH(E_B, I_A) || ECDH(I_B, E_A) || ECDH(E_B, E_A).
	var secret [96]byte
	defer clear(secret[:])
	for i, p := range []struct {
		sk  *keys.Curve25519SecretKey
		pub keys.Curve25519PublicKey
	}{{otk, m.identityKey}, {a.identity, m.baseKey}, {otk, m.baseKey}} {
		s, err := p.sk.SharedSecret(p.pub)
		if err != nil {
			return nil, nil, fmt.Errorf("olm: inbound session: %w", err)
		}
		copy(secret[32*i:], s[:])
		clear(s[:])
	}
	root, ck := kdf64(nil, secret[:], infoRoot)
	s := newSession(m.identityKey, m.baseKey, m.oneTimeKey)
	s.root = root
	s.receivers = []receiverChain{{ratchetKey: m.message.ratchetKey, chain: chainKey{key: ck}}}
	clear(root[:])
	clear(ck[:])

	pt, err := s.decrypt(m.message)
	if err != nil {
		s.wipe()
		return nil, nil, fmt.Errorf("olm: inbound session: %w", err)
	}
	if otkIndex >= 0 {
		a.oneTimeKeys[otkIndex].key.Wipe()
		a.oneTimeKeys = slices.Delete(a.oneTimeKeys, otkIndex, otkIndex+1)
	}
	return s, pt, nil
}

// String returns the public identity keys and nothing secret.
func (a Account) String() string {
	if a.identity == nil || a.signing == nil {
		return "olm.Account{}"
	}
	return "olm.Account{curve25519: " + a.identity.PublicKey().String() + ", ed25519: " + a.signing.PublicKey().String() + "}"
}

// GoString is [Account.String].
func (a Account) GoString() string { return a.String() }

// Format prints [Account.String] for every verb, so no secret is printed.
func (a Account) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, a.String()) }

// LogValue logs the public identity keys only.
func (a Account) LogValue() slog.Value { return slog.StringValue(a.String()) }
