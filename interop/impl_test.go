package interop

// Adapters that put myelin, goolm and libolm behind one interface, in
// libolm's encoding (unpadded base64 keys and messages, message type 0/1),
// so that every cross test runs over every ordered pair of implementations.

import (
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"maunium.net/go/mautrix/crypto/goolm/account"
	"maunium.net/go/mautrix/crypto/goolm/session"
	mautrixolm "maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/id"

	"myelin/interop/libolm"
)

// olmAccount is one device's Olm account.
type olmAccount interface {
	IdentityKeys() (curve25519, ed25519 string)
	Sign(msg []byte) string
	GenerateOneTimeKeys(n int) error
	OneTimeKeys() map[string]string // unpublished, ID -> key
	MarkKeysAsPublished()
	GenerateFallbackKey() error
	UnpublishedFallbackKey() (id, key string, ok bool)
	NewOutboundSession(theirIdentityKey, theirOneTimeKey string) (olmSession, error)
	// NewInboundSession builds a session from a pre-key message, decrypts
	// it and only then removes the one-time key used.
	NewInboundSession(theirIdentityKey, preKeyMessage string) (olmSession, []byte, error)
}

// olmSession is one end of an Olm session.
type olmSession interface {
	ID() string
	Encrypt(plaintext []byte) (msgType int, msg string, err error)
	Decrypt(msgType int, msg string) ([]byte, error)
	MatchesInbound(theirIdentityKey, preKeyMessage string) (bool, error)
	HasReceivedMessage() bool
}

// megolmOutbound is the sender side of a Megolm session.
type megolmOutbound interface {
	ID() string
	Key() string // 0x02 sharing format
	MessageIndex() uint32
	Encrypt(plaintext []byte) (string, error)
}

// megolmInbound is the receiver side of a Megolm session.
type megolmInbound interface {
	ID() string
	FirstKnownIndex() uint32
	Decrypt(msg string) ([]byte, uint32, error)
	Export(index uint32) (string, error) // 0x01 export format
	IsVerified() bool
}

// impl is one implementation under test. Random input comes from rnd;
// goolm ignores it (it reads crypto/rand itself) and so is never compared
// byte for byte.
type impl struct {
	name          string
	deterministic bool
	newAccount    func(rnd io.Reader) (olmAccount, error)
	newOutbound   func(rnd io.Reader) (megolmOutbound, error)
	newInbound    func(sessionKey string) (megolmInbound, error)
	importInbound func(exportedKey string) (megolmInbound, error)
}

// impls lists the implementations; myelin's is added by myelin_impl_test.go.
var impls = map[string]*impl{"libolm": libolmImpl, "goolm": goolmImpl}

func getImpl(t testing.TB, name string) *impl {
	t.Helper()
	im, ok := impls[name]
	if !ok {
		t.Skipf("implementation %s not available", name)
	}
	return im
}

// detRand is a deterministic random stream for tests.
func detRand(seed uint64) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

func read(rnd io.Reader, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return nil, err
	}
	return b, nil
}

// ---- libolm ----

var libolmImpl = &impl{
	name: "libolm",
	newAccount: func(rnd io.Reader) (olmAccount, error) {
		r, err := read(rnd, libolm.AccountRandomLength)
		if err != nil {
			return nil, err
		}
		a, err := libolm.NewAccount(r)
		if err != nil {
			return nil, err
		}
		return &libolmAccount{a: a, rnd: rnd}, nil
	},
	newOutbound: func(rnd io.Reader) (megolmOutbound, error) {
		r, err := read(rnd, libolm.OutboundGroupSessionRandomLength)
		if err != nil {
			return nil, err
		}
		o, err := libolm.NewOutboundGroupSession(r)
		if err != nil {
			return nil, err
		}
		return libolmOutbound{o}, nil
	},
	newInbound: func(k string) (megolmInbound, error) {
		s, err := libolm.NewInboundGroupSession(k)
		if err != nil {
			return nil, err
		}
		return libolmInbound{s}, nil
	},
	importInbound: func(k string) (megolmInbound, error) {
		s, err := libolm.ImportInboundGroupSession(k)
		if err != nil {
			return nil, err
		}
		return libolmInbound{s}, nil
	},
}

type libolmAccount struct {
	a   *libolm.Account
	rnd io.Reader
}

func (a *libolmAccount) IdentityKeys() (string, string) {
	c, e, err := a.a.IdentityKeys()
	if err != nil {
		panic(err)
	}
	return c, e
}

func (a *libolmAccount) Sign(msg []byte) string {
	s, err := a.a.Sign(msg)
	if err != nil {
		panic(err)
	}
	return s
}

func (a *libolmAccount) GenerateOneTimeKeys(n int) error {
	r, err := read(a.rnd, n*libolm.OneTimeKeyRandomLength)
	if err != nil {
		return err
	}
	return a.a.GenerateOneTimeKeys(n, r)
}

func (a *libolmAccount) OneTimeKeys() map[string]string {
	m, err := a.a.OneTimeKeys()
	if err != nil {
		panic(err)
	}
	return m
}

func (a *libolmAccount) MarkKeysAsPublished() { a.a.MarkKeysAsPublished() }

func (a *libolmAccount) GenerateFallbackKey() error {
	r, err := read(a.rnd, libolm.FallbackKeyRandomLength)
	if err != nil {
		return err
	}
	return a.a.GenerateFallbackKey(r)
}

func (a *libolmAccount) UnpublishedFallbackKey() (string, string, bool) {
	id, key, ok, err := a.a.UnpublishedFallbackKey()
	if err != nil {
		panic(err)
	}
	return id, key, ok
}

func (a *libolmAccount) NewOutboundSession(ik, otk string) (olmSession, error) {
	r, err := read(a.rnd, libolm.OutboundSessionRandomLength)
	if err != nil {
		return nil, err
	}
	s, err := a.a.NewOutboundSession(ik, otk, r)
	if err != nil {
		return nil, err
	}
	return &libolmSession{s: s, rnd: a.rnd}, nil
}

func (a *libolmAccount) NewInboundSession(ik, pre string) (olmSession, []byte, error) {
	s, err := a.a.NewInboundSessionFrom(ik, pre)
	if err != nil {
		return nil, nil, err
	}
	pt, err := s.Decrypt(libolm.MessageTypePreKey, pre)
	if err != nil {
		s.Free()
		return nil, nil, err
	}
	if err := a.a.RemoveOneTimeKeys(s); err != nil && !libolm.HasCode(err, "BAD_MESSAGE_KEY_ID") {
		// BAD_MESSAGE_KEY_ID: the key was a fallback key, which stays.
		s.Free()
		return nil, nil, err
	}
	return &libolmSession{s: s, rnd: a.rnd}, pt, nil
}

type libolmSession struct {
	s   *libolm.Session
	rnd io.Reader
}

func (s *libolmSession) ID() string {
	id, err := s.s.ID()
	if err != nil {
		panic(err)
	}
	return id
}

func (s *libolmSession) Encrypt(pt []byte) (int, string, error) {
	r, err := read(s.rnd, s.s.EncryptRandomLength())
	if err != nil {
		return 0, "", err
	}
	return s.s.Encrypt(pt, r)
}

func (s *libolmSession) Decrypt(t int, m string) ([]byte, error) { return s.s.Decrypt(t, m) }
func (s *libolmSession) MatchesInbound(ik, pre string) (bool, error) {
	return s.s.MatchesInboundFrom(ik, pre)
}
func (s *libolmSession) HasReceivedMessage() bool { return s.s.HasReceivedMessage() }

type libolmOutbound struct{ o *libolm.OutboundGroupSession }

func (o libolmOutbound) ID() string {
	id, err := o.o.ID()
	if err != nil {
		panic(err)
	}
	return id
}

func (o libolmOutbound) Key() string {
	k, err := o.o.Key()
	if err != nil {
		panic(err)
	}
	return k
}

func (o libolmOutbound) MessageIndex() uint32              { return o.o.MessageIndex() }
func (o libolmOutbound) Encrypt(pt []byte) (string, error) { return o.o.Encrypt(pt) }

type libolmInbound struct{ s *libolm.InboundGroupSession }

func (s libolmInbound) ID() string {
	id, err := s.s.ID()
	if err != nil {
		panic(err)
	}
	return id
}

func (s libolmInbound) FirstKnownIndex() uint32                  { return s.s.FirstKnownIndex() }
func (s libolmInbound) Decrypt(m string) ([]byte, uint32, error) { return s.s.Decrypt(m) }
func (s libolmInbound) Export(i uint32) (string, error)          { return s.s.Export(i) }
func (s libolmInbound) IsVerified() bool                         { return s.s.IsVerified() }

// ---- goolm ----

var goolmImpl = &impl{
	name: "goolm",
	newAccount: func(io.Reader) (olmAccount, error) {
		a, err := account.NewAccount()
		if err != nil {
			return nil, err
		}
		return &goolmAccount{a}, nil
	},
	newOutbound: func(io.Reader) (megolmOutbound, error) {
		o, err := session.NewMegolmOutboundSession()
		if err != nil {
			return nil, err
		}
		return goolmOutbound{o}, nil
	},
	newInbound: func(k string) (megolmInbound, error) {
		s, err := session.NewMegolmInboundSession([]byte(k))
		if err != nil {
			return nil, err
		}
		return goolmInbound{s}, nil
	},
	importInbound: func(k string) (megolmInbound, error) {
		s, err := session.NewMegolmInboundSessionFromExport([]byte(k))
		if err != nil {
			return nil, err
		}
		return goolmInbound{s}, nil
	},
}

type goolmAccount struct{ a *account.Account }

func (a *goolmAccount) IdentityKeys() (string, string) {
	e, c, err := a.a.IdentityKeys()
	if err != nil {
		panic(err)
	}
	return string(c), string(e)
}

func (a *goolmAccount) Sign(msg []byte) string {
	s, err := a.a.Sign(msg)
	if err != nil {
		panic(err)
	}
	return string(s)
}

func (a *goolmAccount) GenerateOneTimeKeys(n int) error { return a.a.GenOneTimeKeys(uint(n)) }

func (a *goolmAccount) OneTimeKeys() map[string]string {
	m, err := a.a.OneTimeKeys()
	if err != nil {
		panic(err)
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = string(v)
	}
	return out
}

func (a *goolmAccount) MarkKeysAsPublished()       { a.a.MarkKeysAsPublished() }
func (a *goolmAccount) GenerateFallbackKey() error { return a.a.GenFallbackKey() }

func (a *goolmAccount) UnpublishedFallbackKey() (string, string, bool) {
	for k, v := range a.a.FallbackKeyUnpublished() {
		return k, string(v), true
	}
	return "", "", false
}

func (a *goolmAccount) NewOutboundSession(ik, otk string) (olmSession, error) {
	s, err := a.a.NewOutboundSession(id.Curve25519(ik), id.Curve25519(otk))
	if err != nil {
		return nil, err
	}
	return goolmSession{s}, nil
}

func (a *goolmAccount) NewInboundSession(ik, pre string) (olmSession, []byte, error) {
	k := id.Curve25519(ik)
	s, err := a.a.NewInboundSessionFrom(&k, pre)
	if err != nil {
		return nil, nil, err
	}
	pt, err := s.Decrypt(pre, id.OlmMsgTypePreKey)
	if err != nil {
		return nil, nil, err
	}
	if err := a.a.RemoveOneTimeKeys(s); err != nil {
		return nil, nil, err
	}
	return goolmSession{s}, pt, nil
}

type goolmSession struct{ s mautrixolm.Session }

func (s goolmSession) ID() string { return string(s.s.ID()) }

func (s goolmSession) Encrypt(pt []byte) (int, string, error) {
	t, m, err := s.s.Encrypt(pt)
	return int(t), string(m), err
}

func (s goolmSession) Decrypt(t int, m string) ([]byte, error) {
	return s.s.Decrypt(m, id.OlmMsgType(t))
}

func (s goolmSession) MatchesInbound(ik, pre string) (bool, error) {
	return s.s.MatchesInboundSessionFrom(ik, pre)
}

func (s goolmSession) HasReceivedMessage() bool { return s.s.HasReceivedMessage() }

type goolmOutbound struct {
	o *session.MegolmOutboundSession
}

func (o goolmOutbound) ID() string           { return string(o.o.ID()) }
func (o goolmOutbound) Key() string          { return o.o.Key() }
func (o goolmOutbound) MessageIndex() uint32 { return uint32(o.o.MessageIndex()) }
func (o goolmOutbound) Encrypt(pt []byte) (string, error) {
	m, err := o.o.Encrypt(pt)
	return string(m), err
}

type goolmInbound struct{ s *session.MegolmInboundSession }

func (s goolmInbound) ID() string              { return string(s.s.ID()) }
func (s goolmInbound) FirstKnownIndex() uint32 { return s.s.FirstKnownIndex() }
func (s goolmInbound) Decrypt(m string) ([]byte, uint32, error) {
	pt, i, err := s.s.Decrypt([]byte(m))
	return pt, uint32(i), err
}
func (s goolmInbound) Export(i uint32) (string, error) {
	k, err := s.s.Export(i)
	return string(k), err
}
func (s goolmInbound) IsVerified() bool { return s.s.IsVerified() }

// b64enc encodes unpadded standard base64.
func b64enc(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

// b64 decodes unpadded standard base64 or panics (test helper).
func b64(s string) []byte {
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		panic(fmt.Sprintf("bad base64 %q: %v", s, err))
	}
	return b
}
