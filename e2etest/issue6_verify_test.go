package e2etest

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"myelin/client"
	"myelin/e2ee"
	"myelin/e2ee/verification"
	"myelin/keys"
	"myelin/signing"
)

// waitUpdate waits for a verification update matching pred.
func waitUpdate(t *testing.T, who string, v *client.Verifier, what string, pred func(client.VerificationUpdate) bool) client.VerificationUpdate {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case u := <-v.Updates():
			if u.Cancelled != nil {
				t.Fatalf("%s: verification cancelled while waiting for %s: %+v", who, what, *u.Cancelled)
			}
			if pred(u) {
				return u
			}
		case <-deadline.C:
			t.Fatalf("%s: no %s within %v", who, what, wait)
		}
	}
}

// sasVerify runs a to-device SAS verification requested by a towards b's
// device, both users comparing and confirming; it returns both outcomes.
func sasVerify(t *testing.T, a, b *tclient) (*verification.Outcome, *verification.Outcome) {
	t.Helper()
	ctx := ctxT(t)
	va, err := a.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := b.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refA, err := va.RequestToDevice(ctx, b.UserID(), []string{b.DeviceID()})
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	req := waitUpdate(t, b.name, vb, "request", func(u client.VerificationUpdate) bool { return u.Request != nil })
	if req.Request.From.User.String() != a.UserID() || req.Request.From.Device.String() != a.DeviceID() {
		t.Fatalf("request from %+v, want %s/%s", req.Request.From, a.UserID(), a.DeviceID())
	}
	refB := req.Flow
	if err := vb.Accept(ctx, refB); err != nil {
		t.Fatalf("accept: %v", err)
	}
	waitUpdate(t, a.name, va, "ready", func(u client.VerificationUpdate) bool { return u.Flow == refA && u.State == verification.Ready })
	if err := va.StartSAS(ctx, refA); err != nil {
		t.Fatalf("start: %v", err)
	}
	sa := waitUpdate(t, a.name, va, "SAS", func(u client.VerificationUpdate) bool { return u.SAS != nil })
	sb := waitUpdate(t, b.name, vb, "SAS", func(u client.VerificationUpdate) bool { return u.SAS != nil })
	if sa.SAS.Decimal != sb.SAS.Decimal {
		t.Fatalf("SAS differ: %v vs %v", sa.SAS.Decimal, sb.SAS.Decimal)
	}
	if (sa.SAS.Emoji == nil) != (sb.SAS.Emoji == nil) || (sa.SAS.Emoji != nil && *sa.SAS.Emoji != *sb.SAS.Emoji) {
		t.Fatal("emoji differ")
	}
	if err := va.Confirm(ctx, refA); err != nil {
		t.Fatalf("confirm a: %v", err)
	}
	if err := vb.Confirm(ctx, refB); err != nil {
		t.Fatalf("confirm b: %v", err)
	}
	oa := waitUpdate(t, a.name, va, "outcome", func(u client.VerificationUpdate) bool { return u.Outcome != nil })
	ob := waitUpdate(t, b.name, vb, "outcome", func(u client.VerificationUpdate) bool { return u.Outcome != nil })
	if oa.SignErr != nil || ob.SignErr != nil {
		t.Fatalf("signing the outcome: %v / %v", oa.SignErr, ob.SignErr)
	}
	return oa.Outcome, ob.Outcome
}

// TestSASOwnDeviceAfterRecovery: device 2 recovers the account's keys with
// the recovery key, then verifies a new device 3 with SAS; device 3 ends up
// cross-signed by the self-signing key device 2 recovered (another user sees
// it as cross-signed) and trusts the master key device 2 proved.
func TestSASOwnDeviceAfterRecovery(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "sas", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")
	rk, err := alice.BootstrapRecovery(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	alice2 := alice.loginUncrossSigned(2)
	if _, err := alice2.RecoverWithKey(ctxT(t), rk); err != nil {
		t.Fatalf("recover: %v", err)
	}
	alice3 := alice.loginUncrossSigned(3)
	o2, o3 := sasVerify(t, alice2, alice3)
	if o2.Device == nil || o2.Device.ID().String() == "" || !o2.SelfVerification() {
		t.Fatalf("device 2 outcome: %+v", o2)
	}
	if o3.MasterKey == nil {
		t.Fatalf("device 3 did not verify the master key: %+v", o3)
	}
	bob.knowsDevice(alice.UserID(), alice3.DeviceID())
	st, err := alice3.Machine().Identity(ctxT(t), alice.UserID())
	if err != nil || st == nil {
		t.Fatal(err)
	}
	if st.MasterKey != o3.MasterKey.PublicKey().String() {
		t.Fatalf("device 3 identity %q, verified %q", st.MasterKey, o3.MasterKey.PublicKey())
	}

	// Device 3 now asks device 2 for the secrets (over Olm, checked
	// against the published keys).
	alice2.EnableSecretSharing()
	alice2.knowsDevice(alice.UserID(), alice3.DeviceID())
	alice3.knowsDevice(alice.UserID(), alice2.DeviceID())
	if err := alice3.RequestSecrets(ctxT(t)); err != nil {
		t.Fatalf("request secrets: %v", err)
	}
	sk2, err := alice2.CrossSigningKeys(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	sk3, err := alice3.CrossSigningKeys(ctxT(t))
	if err != nil {
		t.Fatalf("device 3 holds no cross-signing keys: %v", err)
	}
	if sk2.Master.PublicKey() != sk3.Master.PublicKey() || sk2.UserSigning.PublicKey() != sk3.UserSigning.PublicKey() {
		t.Fatal("shared keys differ")
	}
	if _, err := alice3.TrustedBackupVersion(ctxT(t)); err != nil {
		t.Fatalf("device 3 with the shared backup key: %v", err)
	}
}

// TestSASTwoUsers: alice and bob verify each other with SAS; each signs the
// other's master key with their user-signing key, and their messages are
// then shown as from a verified identity.
func TestSASTwoUsers(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	room, err := alice.CreateEncryptedRoom(ctxT(t), "sas2", []string{bob.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	bob.joinOnInvite(room)
	alice.waitMember(room, bob.UserID(), "join")
	alice.knowsDevice(bob.UserID(), bob.DeviceID())
	bob.knowsDevice(alice.UserID(), alice.DeviceID())

	oa, ob := sasVerify(t, alice, bob)
	if oa.MasterKey == nil || ob.MasterKey == nil || oa.SelfVerification() {
		t.Fatalf("outcomes: %+v / %+v", oa, ob)
	}
	verified := func(tc *tclient, user string) {
		t.Helper()
		ctx := ctxT(t)
		for {
			st, err := tc.Machine().Identity(ctx, user)
			if err == nil && st != nil && st.Verified {
				return
			}
			if err := tc.WaitSync(ctx); err != nil {
				t.Fatalf("%s: %s never verified: %v", tc.name, user, err)
			}
		}
	}
	verified(alice, bob.UserID())
	verified(bob, alice.UserID())
	bob.send(room, "verified hello")
	ev := alice.text(room, "verified hello")
	if ev.Provenance.Trust != e2ee.TrustVerifiedIdentity {
		t.Fatalf("message from verified bob shown as %v", ev.Provenance.Trust)
	}
	alice.send(room, "verified back")
	ev = bob.text(room, "verified back")
	if ev.Provenance.Trust != e2ee.TrustVerifiedIdentity {
		t.Fatalf("message from verified alice shown as %v", ev.Provenance.Trust)
	}
}

// TestSASRefusesDeviceIDCollision is the 2022 sequence of threat model A2:
// the server lists for bob a device whose ID is the base64 of bob's master
// key (myelind itself refuses to create one, so a proxy in front of it
// plays the malicious server for alice), so that a MAC over
// "ed25519:<that ID>" could be taken for the master key. alice's
// verification with bob's genuine device is cancelled with m.key_mismatch
// instead of signing anything.
func TestSASRefusesDeviceIDCollision(t *testing.T) {
	hs := startServer(t)
	var inject atomic.Pointer[injection]
	target, _ := url.Parse(hs)
	proxy := httputil.NewSingleHostReverseProxy(target)
	director := proxy.Director
	proxy.Director = func(r *http.Request) {
		director(r)
		r.Header.Del("Accept-Encoding")
	}
	proxy.ErrorLog = log.New(io.Discard, "", 0)
	proxy.ModifyResponse = func(resp *http.Response) error {
		inj := inject.Load()
		if inj == nil || !strings.HasSuffix(resp.Request.URL.Path, "/keys/query") || resp.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var q map[string]json.RawMessage
		if err := json.Unmarshal(b, &q); err == nil {
			var dks map[string]map[string]json.RawMessage
			if json.Unmarshal(q["device_keys"], &dks) == nil && dks[inj.user] != nil {
				dks[inj.user][inj.device] = inj.keys
				q["device_keys"], _ = json.Marshal(dks)
				b, _ = json.Marshal(q)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := &http.Server{Handler: proxy}
	go ps.Serve(ln)
	t.Cleanup(func() { ps.Close() })

	alice := register(t, "http://"+ln.Addr().String(), "alice")
	bob := register(t, hs, "bob")
	ctx := ctxT(t)
	sk, err := bob.CrossSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	masterB64 := sk.Master.PublicKey().String()
	sk.Wipe()
	evilKey, err := keys.GenerateEd25519SecretKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	dk, _ := json.Marshal(map[string]any{"user_id": bob.UserID(), "device_id": masterB64,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys": map[string]string{"ed25519:" + masterB64: evilKey.PublicKey().String(),
			"curve25519:" + masterB64: keys.EncodeBase64(make([]byte, 32))}})
	signed, err := signing.Sign(dk, bob.UserID(), "ed25519:"+masterB64, evilKey)
	if err != nil {
		t.Fatal(err)
	}
	inject.Store(&injection{user: bob.UserID(), device: masterB64, keys: signed})

	va, err := alice.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := bob.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := va.RequestToDevice(ctx, bob.UserID(), []string{bob.DeviceID()}); err != nil {
		t.Fatal(err)
	}
	req := waitUpdate(t, bob.name, vb, "request", func(u client.VerificationUpdate) bool { return u.Request != nil })
	if err := vb.Accept(ctx, req.Flow); err != nil {
		t.Fatal(err)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		select {
		case u := <-va.Updates():
			if u.Outcome != nil || u.SAS != nil {
				t.Fatalf("verification went on despite the device ID collision: %+v", u)
			}
			if u.Cancelled != nil {
				if u.Cancelled.Code != verification.CancelKeyMismatch || !u.Cancelled.ByUs {
					t.Fatalf("cancelled with %+v, want m.key_mismatch by alice", *u.Cancelled)
				}
				t.Logf("refused: %v (%v)", u.Cancelled.Code, u.Cancelled.Err)
				return
			}
		case <-deadline.C:
			t.Fatal("no cancellation")
		}
	}
}

type injection struct {
	user, device string
	keys         json.RawMessage
}

// TestSASMismatchSignsNothing: when alice's user sees different strings,
// the flow is cancelled with m.mismatched_sas on both sides and neither
// identity becomes verified.
func TestSASMismatchSignsNothing(t *testing.T) {
	hs := startServer(t)
	alice := register(t, hs, "alice")
	bob := register(t, hs, "bob")
	ctx := ctxT(t)
	va, err := alice.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vb, err := bob.Verifier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refA, err := va.RequestToDevice(ctx, bob.UserID(), []string{bob.DeviceID()})
	if err != nil {
		t.Fatal(err)
	}
	req := waitUpdate(t, bob.name, vb, "request", func(u client.VerificationUpdate) bool { return u.Request != nil })
	if err := vb.Accept(ctx, req.Flow); err != nil {
		t.Fatal(err)
	}
	waitUpdate(t, alice.name, va, "ready", func(u client.VerificationUpdate) bool { return u.Flow == refA && u.State == verification.Ready })
	if err := va.StartSAS(ctx, refA); err != nil {
		t.Fatal(err)
	}
	waitUpdate(t, alice.name, va, "SAS", func(u client.VerificationUpdate) bool { return u.SAS != nil })
	waitUpdate(t, bob.name, vb, "SAS", func(u client.VerificationUpdate) bool { return u.SAS != nil })
	if err := vb.Confirm(ctx, req.Flow); err != nil { // bob's user saw a match
		t.Fatal(err)
	}
	if err := va.Mismatch(ctx, refA); err != nil { // alice's did not
		t.Fatal(err)
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for done := false; !done; {
		select {
		case u := <-vb.Updates():
			if u.Outcome != nil {
				t.Fatal("bob completed a verification alice's user refused")
			}
			if u.Cancelled != nil {
				if u.Cancelled.Code != verification.CancelMismatchedSAS {
					t.Fatalf("bob: cancelled with %+v", *u.Cancelled)
				}
				done = true
			}
		case <-deadline.C:
			t.Fatal("bob never saw the cancellation")
		}
	}
	for _, c := range []struct {
		who  *tclient
		user string
	}{{alice, bob.UserID()}, {bob, alice.UserID()}} {
		if err := c.who.WaitSync(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := c.who.Machine().Identity(ctx, c.user)
		if err != nil {
			t.Fatal(err)
		}
		if st != nil && st.Verified {
			t.Fatalf("%s: %s verified after a mismatch", c.who.name, c.user)
		}
	}
}
