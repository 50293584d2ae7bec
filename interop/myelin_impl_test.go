package interop

// The myelin adapter: myelin/crypto/olm and myelin/crypto/megolm behind the
// interfaces of impl_test.go (libolm's base64 encoding on the outside, raw
// wire bytes inside).

import (
	"io"

	"myelin/crypto/megolm"
	"myelin/crypto/olm"
	"myelin/keys"
)

func init() { impls["myelin"] = myelinImpl }

var myelinImpl = &impl{
	name: "myelin",
	newAccount: func(rnd io.Reader) (olmAccount, error) {
		a, err := olm.NewAccount(rnd)
		if err != nil {
			return nil, err
		}
		return &myelinAccount{a: a, rnd: rnd}, nil
	},
	newOutbound: func(rnd io.Reader) (megolmOutbound, error) {
		o, err := megolm.NewOutboundSession(rnd)
		if err != nil {
			return nil, err
		}
		return myelinOutbound{o}, nil
	},
	newInbound: func(k string) (megolmInbound, error) {
		sk, err := megolm.ParseSessionKey(k)
		if err != nil {
			return nil, err
		}
		s, err := megolm.NewInboundSession(sk)
		if err != nil {
			return nil, err
		}
		return myelinInbound{s}, nil
	},
	importInbound: func(k string) (megolmInbound, error) {
		ek, err := megolm.ParseExportedSessionKey(k)
		if err != nil {
			return nil, err
		}
		s, err := megolm.ImportInboundSession(ek)
		if err != nil {
			return nil, err
		}
		return myelinInbound{s}, nil
	},
}

type myelinAccount struct {
	a   *olm.Account
	rnd io.Reader
}

func (a *myelinAccount) IdentityKeys() (string, string) {
	c, e := a.a.IdentityKeys()
	return c.String(), e.String()
}

func (a *myelinAccount) Sign(msg []byte) string { return a.a.Sign(msg).String() }

func (a *myelinAccount) GenerateOneTimeKeys(n int) error { return a.a.GenerateOneTimeKeys(a.rnd, n) }

func (a *myelinAccount) OneTimeKeys() map[string]string {
	m := map[string]string{}
	for _, k := range a.a.OneTimeKeys() {
		m[k.ID] = k.Key.String()
	}
	return m
}

func (a *myelinAccount) MarkKeysAsPublished()       { a.a.MarkKeysAsPublished() }
func (a *myelinAccount) GenerateFallbackKey() error { return a.a.GenerateFallbackKey(a.rnd) }

func (a *myelinAccount) UnpublishedFallbackKey() (string, string, bool) {
	k, ok := a.a.UnpublishedFallbackKey()
	return k.ID, k.Key.String(), ok
}

func (a *myelinAccount) NewOutboundSession(ik, otk string) (olmSession, error) {
	i, err := keys.ParseCurve25519PublicKey(ik)
	if err != nil {
		return nil, err
	}
	o, err := keys.ParseCurve25519PublicKey(otk)
	if err != nil {
		return nil, err
	}
	s, err := a.a.NewOutboundSession(a.rnd, i, o)
	if err != nil {
		return nil, err
	}
	return &myelinSession{s: s, rnd: a.rnd}, nil
}

func parsePreKey(ik, pre string) (keys.Curve25519PublicKey, *olm.PreKeyMessage, error) {
	i, err := keys.ParseCurve25519PublicKey(ik)
	if err != nil {
		return keys.Curve25519PublicKey{}, nil, err
	}
	raw, err := keys.DecodeBase64Lenient(pre)
	if err != nil {
		return keys.Curve25519PublicKey{}, nil, err
	}
	m, err := olm.ParsePreKeyMessage(raw)
	return i, m, err
}

func (a *myelinAccount) NewInboundSession(ik, pre string) (olmSession, []byte, error) {
	i, m, err := parsePreKey(ik, pre)
	if err != nil {
		return nil, nil, err
	}
	s, pt, err := a.a.NewInboundSession(i, m)
	if err != nil {
		return nil, nil, err
	}
	return &myelinSession{s: s, rnd: a.rnd}, pt, nil
}

type myelinSession struct {
	s   *olm.Session
	rnd io.Reader
}

func (s *myelinSession) ID() string { return s.s.ID() }

func (s *myelinSession) Encrypt(pt []byte) (int, string, error) {
	m, err := s.s.Encrypt(s.rnd, pt)
	if err != nil {
		return 0, "", err
	}
	return int(m.Type()), b64enc(m.Marshal()), nil
}

func (s *myelinSession) Decrypt(t int, msg string) ([]byte, error) {
	raw, err := keys.DecodeBase64Lenient(msg)
	if err != nil {
		return nil, err
	}
	m, err := olm.ParseMessage(olm.MessageType(t), raw)
	if err != nil {
		return nil, err
	}
	return s.s.Decrypt(m)
}

func (s *myelinSession) MatchesInbound(ik, pre string) (bool, error) {
	i, m, err := parsePreKey(ik, pre)
	if err != nil {
		return false, err
	}
	return s.s.MatchesInbound(i, m), nil
}

func (s *myelinSession) HasReceivedMessage() bool { return s.s.HasReceivedMessage() }

type myelinOutbound struct{ o *megolm.OutboundSession }

func (o myelinOutbound) ID() string           { return o.o.ID() }
func (o myelinOutbound) Key() string          { return o.o.SessionKey().String() }
func (o myelinOutbound) MessageIndex() uint32 { return o.o.MessageIndex() }
func (o myelinOutbound) Encrypt(pt []byte) (string, error) {
	return b64enc(o.o.Encrypt(pt)), nil
}

type myelinInbound struct{ s *megolm.InboundSession }

func (s myelinInbound) ID() string              { return s.s.ID() }
func (s myelinInbound) FirstKnownIndex() uint32 { return s.s.FirstKnownIndex() }
func (s myelinInbound) Decrypt(m string) ([]byte, uint32, error) {
	raw, err := keys.DecodeBase64Lenient(m)
	if err != nil {
		return nil, 0, err
	}
	return s.s.Decrypt(raw)
}
func (s myelinInbound) Export(i uint32) (string, error) {
	k, err := s.s.Export(i)
	if err != nil {
		return "", err
	}
	return k.String(), nil
}
func (s myelinInbound) IsVerified() bool { return s.s.SigningKeyVerified() }
