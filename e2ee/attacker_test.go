package e2ee_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"math/rand/v2"
	"slices"

	"myelin/canonicaljson"
	"myelin/crypto/crosssign"
	"myelin/crypto/megolm"
	"myelin/crypto/olm"
	"myelin/e2ee"
	"myelin/keys"
)

// attacker is the threat model's "attacker crypto kit": a device with real
// Olm/Megolm keys whose messages are hand-built, so tests can forge any
// field.
type attacker struct {
	srv      *fakeServer
	user     string
	device   string
	acct     *olm.Account
	curve    keys.Curve25519PublicKey
	ed       keys.Ed25519PublicKey
	devKeys  json.RawMessage
	rnd      *rand.ChaCha8
	sessions map[string]*olm.Session
}

func signWith(acct *olm.Account, user, device string, obj map[string]any) map[string]any {
	b, _ := canonicaljson.Marshal(obj)
	sig := acct.Sign(b)
	obj["signatures"] = map[string]any{user: map[string]any{"ed25519:" + device: sig.String()}}
	return obj
}

// newAttacker registers a device for user on the server, cross-signed by
// the user's SSK if crossSign.
func (s *fakeServer) newAttacker(user, device string, crossSign bool) *attacker {
	rnd := rand.NewChaCha8(sha256.Sum256([]byte("attacker|" + user + "|" + device)))
	acct, err := olm.NewAccount(rnd)
	if err != nil {
		s.t.Fatal(err)
	}
	a := &attacker{srv: s, user: user, device: device, acct: acct, rnd: rnd, sessions: map[string]*olm.Session{}}
	a.curve, a.ed = acct.IdentityKeys()
	dk := signWith(acct, user, device, map[string]any{
		"user_id": user, "device_id": device,
		"algorithms": []any{crosssign.AlgorithmOlm, crosssign.AlgorithmMegolm},
		"keys":       map[string]any{"curve25519:" + device: a.curve.String(), "ed25519:" + device: a.ed.String()},
	})
	a.devKeys, _ = canonicaljson.Marshal(dk)
	if crossSign {
		a.devKeys, err = s.identity(user).SignDevice(a.devKeys)
		if err != nil {
			s.t.Fatal(err)
		}
	} else {
		s.identity(user)
		s.noCrossSign[user+"|"+device] = true
	}
	if s.devices[user] == nil {
		s.devices[user] = map[string]json.RawMessage{}
	}
	s.devices[user][device] = a.devKeys
	// Publish a few one-time keys, signed.
	acct.GenerateOneTimeKeys(rnd, 5)
	if s.otks[user] == nil {
		s.otks[user] = map[string]map[string]json.RawMessage{}
	}
	s.otks[user][device] = map[string]json.RawMessage{}
	for _, k := range acct.OneTimeKeys() {
		o := signWith(acct, user, device, map[string]any{"key": k.Key.String()})
		s.otks[user][device]["signed_curve25519:"+k.ID], _ = json.Marshal(o)
	}
	acct.MarkKeysAsPublished()
	s.markChanged(user)
	return a
}

// plaintext returns an honest Olm plaintext from a to victim c.
func (a *attacker) plaintext(c *client, typ string, content any) map[string]any {
	_, ed := c.m.IdentityKeys()
	return map[string]any{
		"type": typ, "content": content, "sender": a.user, "recipient": c.user,
		"recipient_keys": map[string]any{"ed25519": ed.String()},
		"keys":           map[string]any{"ed25519": a.ed.String()},
	}
}

// olmTo encrypts pt to c's device over Olm (claiming a one-time key of c
// from the server on first use) and returns the to-device event with
// envelope sender envSender.
func (a *attacker) olmTo(c *client, envSender string, pt map[string]any) e2ee.ToDeviceEvent {
	a.srv.t.Helper()
	curve, _ := c.m.IdentityKeys()
	s := a.sessions[c.user+c.device]
	if s == nil {
		pool := a.srv.otks[c.user][c.device]
		ids := make([]string, 0, len(pool))
		for k := range pool {
			ids = append(ids, k)
		}
		slices.Sort(ids)
		var otk struct {
			Key string `json:"key"`
		}
		if len(ids) == 0 {
			// No one-time key left: use the fallback key (not deleted).
			for _, v := range a.srv.fallback[c.user][c.device] {
				json.Unmarshal(v, &otk)
			}
			if otk.Key == "" {
				a.srv.t.Fatal("victim has no one-time or fallback keys")
			}
		} else {
			json.Unmarshal(pool[ids[0]], &otk)
			delete(pool, ids[0])
		}
		k, _ := keys.ParseCurve25519PublicKey(otk.Key)
		var err error
		s, err = a.acct.NewOutboundSession(a.rnd, curve, k)
		if err != nil {
			a.srv.t.Fatal(err)
		}
		a.sessions[c.user+c.device] = s
	}
	b, _ := json.Marshal(pt)
	msg, err := s.Encrypt(a.rnd, b)
	if err != nil {
		a.srv.t.Fatal(err)
	}
	content, _ := json.Marshal(map[string]any{
		"algorithm": crosssign.AlgorithmOlm, "sender_key": a.curve.String(),
		"ciphertext": map[string]any{curve.String(): map[string]any{"type": int(msg.Type()), "body": keys.EncodeBase64(msg.Marshal())}},
	})
	return e2ee.ToDeviceEvent{Type: "m.room.encrypted", Sender: envSender, Content: content}
}

// deliver puts events into c's inbox.
func (s *fakeServer) deliver(c *client, evs ...e2ee.ToDeviceEvent) {
	key := c.user + "|" + c.device
	s.inbox[key] = append(s.inbox[key], evs...)
}

// megolmSession is an attacker-held Megolm session.
func (a *attacker) megolmSession() *megolm.OutboundSession {
	s, err := megolm.NewOutboundSession(a.rnd)
	if err != nil {
		a.srv.t.Fatal(err)
	}
	return s
}

func roomKeyContent(room string, s *megolm.OutboundSession) map[string]any {
	return map[string]any{"algorithm": crosssign.AlgorithmMegolm, "room_id": room, "session_id": s.ID(), "session_key": s.SessionKey().String()}
}

// megolmEvent encrypts plaintext (type/content/room_id) with s.
func (a *attacker) megolmEvent(s *megolm.OutboundSession, room, plainRoom, sender, eventID, body string) (ev apiEvent) {
	pt, _ := json.Marshal(map[string]any{"type": "m.room.message", "room_id": plainRoom,
		"content": map[string]any{"msgtype": "m.text", "body": body}})
	ct := s.Encrypt(pt)
	c, _ := json.Marshal(map[string]any{"algorithm": crosssign.AlgorithmMegolm, "sender_key": a.curve.String(),
		"device_id": a.device, "session_id": s.ID(), "ciphertext": keys.EncodeBase64(ct)})
	return apiEvent{Type: "m.room.encrypted", Content: c, Sender: sender, RoomID: room, EventID: eventID}
}

var _ = bytes.Equal

type apiEvent = e2ee.Event

func olmParsePreKey(b []byte) (*olm.PreKeyMessage, error) { return olm.ParsePreKeyMessage(b) }
