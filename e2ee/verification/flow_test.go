package verification

import (
	"errors"
	"testing"
	"time"

	"myelin/crypto/crosssign"
	"myelin/crypto/sas"
	"myelin/signing"
)

// TestEndToEnd runs two machines against each other through the whole
// flow: request, ready, start, accept, key, mac, done; both see the same
// SAS, and each outcome names exactly the other side's pinned keys.
func TestEndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name          string
		transport     Transport
		sameUser      bool
		starterIsResp bool
	}{
		{"to-device/other user/responder starts", ToDevice, false, true},
		{"to-device/other user/requester starts", ToDevice, false, false},
		{"to-device/own device", ToDevice, true, true},
		{"in-room/responder starts", InRoom, false, true},
		{"in-room/requester starts", InRoom, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			alice := w.newUser("alice", 1)
			bobU := alice
			if !tc.sameUser {
				bobU = w.newUser("bob", 2)
			}
			a := w.newParty(alice, "ALICEDEV", 10, Options{})
			b := w.newParty(bobU, "BOBDEV", 11, Options{})
			s := request(w, a, b, tc.transport)
			if s.requestErr != nil {
				t.Fatal(s.requestErr)
			}
			starter := a
			if tc.starterIsResp {
				starter = b
			}
			s.sasToEnd(starter)
			for _, p := range []*party{a, b} {
				if c := p.cancellation(); c != nil {
					t.Fatalf("%s cancelled: %s %v (errors %v)", p.device, c.Code, c.Err, p.errs)
				}
			}
			sa, sb := a.sas(), b.sas()
			if sa == nil || sb == nil {
				t.Fatal("no SAS shown")
			}
			if sa.Decimal != sb.Decimal || sa.Emoji == nil || sb.Emoji == nil || *sa.Emoji != *sb.Emoji {
				t.Fatalf("SAS differ: %v %v", sa, sb)
			}
			for _, pair := range [][2]*party{{a, b}, {b, a}} {
				me, them := pair[0], pair[1]
				o := me.outcome()
				if o == nil {
					t.Fatalf("%s: no outcome (errors %v)", me.device, me.errs)
				}
				if o.Their.User != them.u.id || o.Their.Device != them.device {
					t.Fatalf("outcome party %v", o.Their)
				}
				if d, ok := o.Device.ID().DeviceID(); !ok || d != them.device || o.Device.PublicKey() != them.devSK.PublicKey() {
					t.Fatalf("%s: device key in outcome is not the other device's", me.device)
				}
				if o.MasterKey == nil || o.MasterKey.PublicKey() != them.u.cs.Master.PublicKey() || !o.MasterKey.ID().IsCrossSigning() {
					t.Fatalf("%s: master key in outcome wrong", me.device)
				}
				if st, _ := me.m.State(o.Flow); st != Done {
					t.Fatalf("%s: state %s", me.device, st)
				}
				// The signature the caller uploads.
				if tc.sameUser {
					up, err := o.SignOwnDevice(me.u.cs, them.deviceKeysJSON(t))
					if err != nil {
						t.Fatal(err)
					}
					signed := up[me.u.id.String()][them.device.String()]
					if err := signing.Verify(signed, me.u.id.String(), "ed25519:"+me.u.cs.SelfSigning.PublicKey().String(), me.u.cs.SelfSigning.PublicKey()); err != nil {
						t.Fatalf("self-signing signature: %v", err)
					}
					mk, err := me.u.cs.MasterKeyJSON()
					if err != nil {
						t.Fatal(err)
					}
					up, err = o.SignOwnMasterKey(me.device, me.devSK, mk)
					if err != nil {
						t.Fatal(err)
					}
					signed = up[me.u.id.String()][me.u.cs.Master.PublicKey().String()]
					if err := signing.Verify(signed, me.u.id.String(), "ed25519:"+me.device.String(), me.devSK.PublicKey()); err != nil {
						t.Fatalf("device signature of the master key: %v", err)
					}
					evil := w.newUser("alice", 66)
					if emk, _ := evil.cs.MasterKeyJSON(); emk != nil {
						if _, err := o.SignOwnMasterKey(me.device, me.devSK, emk); !errors.Is(err, ErrKeyChanged) {
							t.Fatalf("signed another master key: %v", err)
						}
					}
				} else {
					mk, err := them.u.cs.MasterKeyJSON()
					if err != nil {
						t.Fatal(err)
					}
					up, err := o.SignOtherUser(me.u.cs, mk)
					if err != nil {
						t.Fatal(err)
					}
					signed := up[them.u.id.String()][them.u.cs.Master.PublicKey().String()]
					if err := signing.Verify(signed, me.u.id.String(), "ed25519:"+me.u.cs.UserSigning.PublicKey().String(), me.u.cs.UserSigning.PublicKey()); err != nil {
						t.Fatalf("user-signing signature: %v", err)
					}
				}
			}
		})
	}
}

// TestSASMatchesPackage checks the SAS shown against the sas package's
// emoji table and decimal rule for the same bytes: decimal numbers in
// range, emoji from the spec table.
func TestSASMatchesPackage(t *testing.T) {
	w := newWorld(t)
	a := w.newParty(w.newUser("alice", 1), "ALICEDEV", 10, Options{})
	b := w.newParty(w.newUser("bob", 2), "BOBDEV", 11, Options{})
	s := request(w, a, b, ToDevice)
	s.sasToEnd(b)
	got := a.sas()
	if got == nil {
		t.Fatal("no SAS")
	}
	for _, n := range got.Decimal {
		if n < 1000 || n > 9191 {
			t.Fatalf("decimal %d out of range", n)
		}
	}
	table := sas.EmojiTable()
	for _, e := range got.Emoji {
		if table[e.Number] != e {
			t.Fatalf("emoji %v not from the table", e)
		}
	}
}

// TestSignRefusals: the signing helpers sign only what was verified.
func TestSignRefusals(t *testing.T) {
	w := newWorld(t)
	alice := w.newUser("alice", 1)
	a := w.newParty(alice, "ALICEDEV", 10, Options{})
	a2 := w.newParty(alice, "ALICEDEV2", 12, Options{})
	other := w.newParty(alice, "ALICEDEV3", 13, Options{})
	s := request(w, a, a2, ToDevice)
	s.sasToEnd(a2)
	o := a.outcome()
	if o == nil {
		t.Fatalf("no outcome: %v", a.errs)
	}
	// Another device's object: refused.
	if _, err := o.SignOwnDevice(alice.cs, other.deviceKeysJSON(t)); !errors.Is(err, ErrKeyChanged) {
		t.Fatalf("signing another device: %v", err)
	}
	// Not an own-user method for an own-device outcome.
	mk, _ := alice.cs.MasterKeyJSON()
	if _, err := o.SignOtherUser(alice.cs, mk); !errors.Is(err, ErrWrongState) {
		t.Fatalf("SignOtherUser on self-verification: %v", err)
	}
	// Someone else's signing keys.
	bob := w.newUser("bob", 2)
	if _, err := o.SignOwnDevice(bob.cs, a2.deviceKeysJSON(t)); !errors.Is(err, crosssign.ErrNoSecretKey) {
		t.Fatalf("foreign signing keys: %v", err)
	}
}

// Rule: an in-room request addressed to someone else, or our own request
// echoed back, starts nothing.
func TestInRoomRequestNotForUs(t *testing.T) {
	w, a, b := pair(t, Options{})
	carol := mustUser(t, "@carol:example.org")
	out := a.m.RequestInRoomContent(w.room, carol)
	ev := mustEvent(t, "$req:example.org")
	if _, err := b.m.Handle(w.now, Incoming{Transport: InRoom, Type: TypeRoomMessage, Sender: a.u.id, Room: w.room, EventID: ev, OriginServerTS: w.now, Content: out.Content}); !errors.Is(err, ErrIgnored) {
		t.Fatalf("request for carol: %v", err)
	}
	if _, err := a.m.Handle(w.now, Incoming{Transport: InRoom, Type: TypeRoomMessage, Sender: a.u.id, Room: w.room, EventID: ev, OriginServerTS: w.now, Content: out.Content}); !errors.Is(err, ErrIgnored) {
		t.Fatalf("own echo: %v", err)
	}
}

// Finished flows are forgotten once their time is up; late messages for
// them are then unknown.
func TestTickForgetsFinishedFlows(t *testing.T) {
	w, a, b := pair(t, Options{})
	s := request(w, a, b, ToDevice)
	s.sasToEnd(b)
	if a.outcome() == nil {
		t.Fatal("no outcome")
	}
	a.m.Tick(w.now.Add(FlowTimeout + time.Second))
	if _, ok := a.m.State(s.reqRef); ok {
		t.Fatal("finished flow kept")
	}
}

func BenchmarkSASFlow(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		w, a, c := pair(b, Options{})
		s := request(w, a, c, ToDevice)
		s.sasToEnd(c)
		if a.outcome() == nil {
			b.Fatal("no outcome")
		}
	}
}
