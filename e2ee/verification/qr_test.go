package verification

import (
	"errors"
	"testing"

	"myelin/crypto/sas"
	"myelin/id"
	"myelin/keys"
)

// qrSetup: ready flow between shower and scanner with QR enabled.
func qrPair(t testing.TB, sameUser bool, showerTrustsMSK, scannerTrustsMSK bool) (*world, *party, *party) {
	w := newWorld(t)
	alice := w.newUser("alice", 1)
	u2 := alice
	if !sameUser {
		u2 = w.newUser("bob", 2)
	}
	shower := w.newParty(alice, "ALICEDEV", 10, Options{QR: true})
	scanner := w.newParty(u2, "BOBDEV", 11, Options{QR: true})
	if !showerTrustsMSK {
		shower.m.cfg.Own.MasterKey = keys.Ed25519PublicKey{}
	}
	if !scannerTrustsMSK {
		scanner.m.cfg.Own.MasterKey = keys.Ed25519PublicKey{}
	}
	return w, shower, scanner
}

func TestQREndToEnd(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		sameUser               bool
		showerTrusts, scanTrus bool
		tr                     Transport
		mode                   sas.QRMode
		// what each side ends up verifying
		showerGetsMSK, showerGetsDevice   bool
		scannerGetsMSK, scannerGetsDevice bool
	}{
		{"other user in-room", false, true, true, InRoom, sas.QRVerifyingAnotherUser, true, false, true, false},
		{"other user to-device", false, true, true, ToDevice, sas.QRVerifyingAnotherUser, true, false, true, false},
		{"own device, shower trusts the master key", true, true, false, ToDevice, sas.QRSelfVerifyingTrusted, false, true, true, false},
		{"own device, shower does not trust it yet", true, false, true, ToDevice, sas.QRSelfVerifyingUntrusted, true, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, sh, sc := qrPair(t, tc.sameUser, tc.showerTrusts, tc.scanTrus)
			s := request(w, sh, sc, tc.tr)
			code, err := sh.m.ShowQR(w.now, s.reqRef)
			if err != nil {
				t.Fatal(err)
			}
			q, err := sas.ParseQRCode(code)
			if err != nil || q.Mode != tc.mode || q.FlowID != s.reqRef.ID {
				t.Fatalf("code: %v %+v", err, q)
			}
			sc.do(sc.m.ScanQR(w.now, s.respRef, code))
			var scanned bool
			for _, r := range sh.results {
				scanned = scanned || r.QRScanned
			}
			if !scanned || sh.outcome() != nil || sc.outcome() != nil {
				t.Fatalf("after the scan: scanned %v, outcomes %v %v (errs %v %v)", scanned, sh.outcome(), sc.outcome(), sh.errs, sc.errs)
			}
			sh.do(sh.m.ConfirmQRScanned(w.now, s.reqRef))
			for _, x := range []struct {
				me, them         *party
				wantMSK, wantDev bool
			}{{sh, sc, tc.showerGetsMSK, tc.showerGetsDevice}, {sc, sh, tc.scannerGetsMSK, tc.scannerGetsDevice}} {
				o := x.me.outcome()
				if o == nil {
					t.Fatalf("%s: no outcome (errs %v, cancel %+v)", x.me.device, x.me.errs, x.me.cancellation())
				}
				if (o.MasterKey != nil) != x.wantMSK || (o.Device != nil) != x.wantDev {
					t.Fatalf("%s: outcome MSK %v device %v", x.me.device, o.MasterKey != nil, o.Device != nil)
				}
				if o.MasterKey != nil && o.MasterKey.PublicKey() != x.them.u.cs.Master.PublicKey() {
					t.Fatal("wrong master key verified")
				}
				if o.Device != nil && o.Device.PublicKey() != x.them.devSK.PublicKey() {
					t.Fatal("wrong device key verified")
				}
			}
		})
	}
}

// Rule (B11 e): the reciprocation must carry our secret, come from the
// flow's device, once; the shower trusts nothing before its user confirms.
func TestQRReciprocateRules(t *testing.T) {
	setup := func(t *testing.T) (*world, *party, *party, *setup, []byte) {
		w, sh, sc := qrPair(t, false, true, true)
		s := request(w, sh, sc, ToDevice)
		code, err := sh.m.ShowQR(w.now, s.reqRef)
		if err != nil {
			t.Fatal(err)
		}
		return w, sh, sc, s, code
	}
	t.Run("wrong secret", func(t *testing.T) {
		w, sh, sc, s, code := setup(t)
		w.tamper = func(from, to *party, in *Incoming) bool {
			if in.Type == TypeStart {
				in.Content = editJSON(t, in.Content, func(m map[string]any) { m["secret"] = keys.EncodeBase64([]byte("shoulder-surfed?")) })
			}
			return true
		}
		sc.do(sc.m.ScanQR(w.now, s.respRef, code))
		wantCancel(t, sh, CancelKeyMismatch, true, sas.ErrQRSecretMismatch)
		if _, err := sh.m.ConfirmQRScanned(w.now, s.reqRef); err == nil {
			t.Fatal("confirm after a bad secret")
		}
	})
	t.Run("from another device", func(t *testing.T) {
		w, sh, sc, s, code := setup(t)
		w.tamper = func(from, to *party, in *Incoming) bool {
			if in.Type == TypeStart {
				in.Content = editJSON(t, in.Content, func(m map[string]any) { m["from_device"] = "ATTACKERDEV" })
			}
			return true
		}
		sc.do(sc.m.ScanQR(w.now, s.respRef, code))
		wantCancel(t, sh, CancelUserMismatch, true, ErrSenderMismatch)
	})
	t.Run("only once", func(t *testing.T) {
		w, sh, sc, s, code := setup(t)
		var start Incoming
		w.tamper = func(from, to *party, in *Incoming) bool {
			if in.Type == TypeStart {
				start = *in
			}
			return true
		}
		sc.do(sc.m.ScanQR(w.now, s.respRef, code))
		sh.do(sh.m.Handle(w.now, start))
		wantCancel(t, sh, CancelUnexpectedMessage, true, ErrUnexpectedMessage)
	})
	t.Run("no trust before the user confirms", func(t *testing.T) {
		w, sh, sc, s, code := setup(t)
		sc.do(sc.m.ScanQR(w.now, s.respRef, code))
		if sh.outcome() != nil || sc.outcome() != nil {
			t.Fatal("outcome before confirmation")
		}
		// A done from the scanner does not complete the shower either.
		done := encode(map[string]any{"transaction_id": s.reqRef.ID})
		sh.do(sh.m.Handle(w.now, Incoming{Transport: ToDevice, Type: TypeDone, Sender: sc.u.id, Content: done}))
		if sh.outcome() != nil {
			t.Fatal("outcome from done alone")
		}
	})
}

// Rule: the scanner checks both keys in the code against its own beliefs.
func TestQRScanChecksKeys(t *testing.T) {
	t.Run("our master key as they believe it is not ours", func(t *testing.T) {
		w, sh, sc := qrPair(t, false, true, true)
		// The server served alice a fake master key for bob.
		fake := otherKey(t, 42)
		sh.override = func(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
			tk, err := w.honest(u, d)
			tk.MasterKey = fake
			return tk, err
		}
		s := request(w, sh, sc, InRoom)
		code, err := sh.m.ShowQR(w.now, s.reqRef)
		if err != nil {
			t.Fatal(err)
		}
		sc.do(sc.m.ScanQR(w.now, s.respRef, code))
		wantCancel(t, sc, CancelKeyMismatch, true, sas.ErrKeyMismatch)
		wantCancel(t, sh, CancelKeyMismatch, false, nil)
	})
	t.Run("their master key is not what we pinned", func(t *testing.T) {
		w, sh, sc := qrPair(t, false, true, true)
		sc.override = func(u id.UserID, d id.DeviceID) (sas.TheirKeys, error) {
			tk, err := w.honest(u, d)
			tk.MasterKey = otherKey(t, 42)
			return tk, err
		}
		s := request(w, sh, sc, InRoom)
		code, _ := sh.m.ShowQR(w.now, s.reqRef)
		sc.do(sc.m.ScanQR(w.now, s.respRef, code))
		wantCancel(t, sc, CancelKeyMismatch, true, sas.ErrKeyMismatch)
	})
	t.Run("code for another flow", func(t *testing.T) {
		w, sh, sc := qrPair(t, false, true, true)
		s := request(w, sh, sc, InRoom)
		code, _ := sh.m.ShowQR(w.now, s.reqRef)
		q, _ := sas.ParseQRCode(code)
		q.FlowID = "$another:example.org"
		other, _ := q.Encode()
		sc.do(sc.m.ScanQR(w.now, s.respRef, other))
		wantCancel(t, sc, CancelKeyMismatch, true, ErrKeyChanged)
	})
	t.Run("garbage changes nothing", func(t *testing.T) {
		w, sh, sc := qrPair(t, false, true, true)
		s := request(w, sh, sc, InRoom)
		if _, err := sc.m.ScanQR(w.now, s.respRef, []byte("https://example.org")); !errors.Is(err, sas.ErrInvalidQRCode) {
			t.Fatalf("garbage: %v", err)
		}
		if st, _ := sc.m.State(s.respRef); st != Ready {
			t.Fatalf("state %s", st)
		}
	})
	t.Run("not advertised", func(t *testing.T) {
		w, a, b := pair(t, Options{})
		s := request(w, a, b, InRoom)
		if _, err := a.m.ShowQR(w.now, s.reqRef); !errors.Is(err, ErrQRNotPossible) {
			t.Fatalf("show without QR methods: %v", err)
		}
	})
}
