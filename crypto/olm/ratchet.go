package olm

import (
	"myelin/crypto/internal/cipher"
	"myelin/keys"
)

// Limits of the double ratchet. They are vodozemac's
// (src/olm/session/{mod,receiver_chain}.rs); libolm uses the same numbers
// but shares the skipped keys across chains.
const (
	// MaxReceiverChains is how many receiver chains a session keeps; when a
	// new one is added the oldest is dropped.
	MaxReceiverChains = 5
	// MaxSkippedMessageKeys is how many skipped message keys each receiver
	// chain keeps for out-of-order delivery; beyond it the oldest are
	// dropped.
	MaxSkippedMessageKeys = 40
	// MaxMessageGap is how far ahead of a receiver chain a message's chain
	// index may be. Further gaps fail with *[MessageGapError].
	MaxMessageGap = 2000
)

const (
	infoRoot    = "OLM_ROOT"
	infoRatchet = "OLM_RATCHET"
	infoKeys    = "OLM_KEYS"
)

var (
	seedMessageKey = []byte{0x01}
	seedChainKey   = []byte{0x02}
)

// chainKey is C_i,j together with j.
type chainKey struct {
	key   [32]byte
	index uint32
}

// messageKey returns M_i,j = HMAC(C_i,j, 0x01).
func (c *chainKey) messageKey() messageKey {
	return messageKey{key: cipher.HMAC(c.key[:], seedMessageKey), index: c.index}
}

// advance sets C_i,j+1 = HMAC(C_i,j, 0x02).
func (c *chainKey) advance() {
	c.key = cipher.HMAC(c.key[:], seedChainKey)
	c.index++
}

func (c *chainKey) wipe() { clear(c.key[:]); c.index = 0 }

// messageKey is M_i,j together with j.
type messageKey struct {
	key   [32]byte
	index uint32
}

func (m *messageKey) cipherKeys() cipher.Keys { return cipher.DeriveKeys(m.key[:], infoKeys) }

// senderChain is our current ratchet key pair T_i and chain key.
type senderChain struct {
	ratchet *keys.Curve25519SecretKey
	chain   chainKey
}

func (s *senderChain) wipe() {
	if s == nil {
		return
	}
	if s.ratchet != nil {
		s.ratchet.Wipe()
	}
	s.chain.wipe()
}

// receiverChain is a peer ratchet key T_i, its chain key and the message
// keys skipped on it.
type receiverChain struct {
	ratchetKey keys.Curve25519PublicKey
	chain      chainKey
	skipped    []messageKey // oldest first, at most MaxSkippedMessageKeys
}

func (r *receiverChain) wipe() {
	r.chain.wipe()
	for i := range r.skipped {
		clear(r.skipped[i].key[:])
	}
	r.skipped = nil
}

// kdf64 returns HKDF-SHA-256(salt, ikm, info) split into two 32-byte keys
// (root key and chain key). An empty salt is the zero salt.
func kdf64(salt, ikm []byte, info string) (a, b [32]byte) {
	var out [64]byte
	cipher.HKDF(out[:], salt, ikm, info)
	copy(a[:], out[:32])
	copy(b[:], out[32:])
	clear(out[:])
	return a, b
}
