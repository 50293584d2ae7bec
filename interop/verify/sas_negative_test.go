package verify

import (
	"crypto/rand"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"

	"myelin/e2ee/verification"
	"myelin/keys"
)

// TestSASWithMautrixRefusals: flows against mautrix that must not verify
// anything on the myelin side. The server-swap cases are threat model A2:
// the directory the myelin device got from the server holds a key that is not
// mautrix's, the users compare matching strings (the SAS does not depend on
// the long-term keys), and only the MAC over the pinned keys can catch it.
func TestSASWithMautrixRefusals(t *testing.T) {
	otherKey := func(t *testing.T) keys.Ed25519PublicKey {
		k, err := keys.GenerateEd25519SecretKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k.PublicKey()
	}
	tests := []struct {
		name string
		// setup changes what the myelin side believes before the flow.
		setup func(t *testing.T, p *pair)
		// act replaces the users' confirmations.
		act      func(t *testing.T, p *pair, txn string, flow verification.FlowRef)
		wantCode verification.CancelCode
		byUs     bool
		// mautrixCode is the cancel code mautrix must report (its
		// VerificationCancelled callback); empty: none expected.
		mautrixCode event.VerificationCancelCode
	}{
		{
			name:  "server swapped mautrix's device key",
			setup: func(t *testing.T, p *pair) { p.theirKeys.DeviceKey = otherKey(t) },
			act:   confirmMautrixFirst,
			// myelin's MAC check fails on the device key.
			wantCode: verification.CancelKeyMismatch, byUs: true, mautrixCode: event.VerificationCancelCodeKeyMismatch,
		},
		{
			name:     "server swapped mautrix's master key",
			setup:    func(t *testing.T, p *pair) { p.theirKeys.MasterKey = otherKey(t) },
			act:      confirmMautrixFirst,
			wantCode: verification.CancelKeyMismatch, byUs: true, mautrixCode: event.VerificationCancelCodeKeyMismatch,
		},
		{
			name: "myelin user sees different emoji",
			act: func(t *testing.T, p *pair, _ string, flow verification.FlowRef) {
				p.toMautrix(p.m.Mismatch(time.Now(), flow))
				p.pump()
			},
			wantCode: verification.CancelMismatchedSAS, byUs: true, mautrixCode: event.VerificationCancelCodeSASMismatch,
		},
		{
			name: "mautrix user sees different emoji",
			act: func(t *testing.T, p *pair, txn string, _ verification.FlowRef) {
				if err := p.helper.CancelVerification(p.ctx, mautrixTxn(txn), event.VerificationCancelCodeSASMismatch, "emoji differ"); err != nil {
					t.Fatal(err)
				}
				p.pump()
			},
			// mautrix reports its own cancellations to no callback.
			wantCode: verification.CancelMismatchedSAS, byUs: false,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t)
			if tc.setup != nil {
				tc.setup(t, p)
			}
			txn, flow := p.request(true)
			p.start(true, txn, flow)
			p.checkSAS()
			tc.act(t, p, string(txn), flow)

			if o := p.myelinOutcome(); o != nil {
				t.Fatalf("myelin verified %v despite %s", o.Their, tc.name)
			}
			c := p.myelinCancelled()
			if c == nil {
				t.Fatal("myelin did not cancel")
			}
			if c.Code != tc.wantCode || c.ByUs != tc.byUs {
				t.Errorf("myelin cancel %s (by us %v), want %s (by us %v); reason %q err %v", c.Code, c.ByUs, tc.wantCode, tc.byUs, c.Reason, c.Err)
			}
			if st, _ := p.m.State(flow); st != verification.Cancelled {
				t.Errorf("myelin state %v, want cancelled", st)
			}
			p.cb.mu.Lock()
			defer p.cb.mu.Unlock()
			if p.cb.done {
				t.Error("mautrix reached done")
			}
			got := event.VerificationCancelCode("")
			if p.cb.cancelled != nil {
				got = *p.cb.cancelled
			}
			if got != tc.mautrixCode {
				t.Errorf("mautrix cancel %q %q, want %q", got, p.cb.reason, tc.mautrixCode)
			}
			t.Logf("myelin: %s (%s); mautrix told: %q %q", c.Code, c.Reason, got, p.cb.reason)
		})
	}
}

func confirmMautrixFirst(t *testing.T, p *pair, txn string, flow verification.FlowRef) {
	t.Helper()
	if err := p.helper.ConfirmSAS(p.ctx, mautrixTxn(txn)); err != nil {
		t.Fatalf("mautrix ConfirmSAS: %v", err)
	}
	p.pump()
	r, err := p.m.Confirm(time.Now(), flow)
	if err != nil {
		// Already cancelled on receipt of mautrix's MAC.
		t.Logf("myelin Confirm: %v", err)
		return
	}
	p.toMautrix(r, nil)
	p.pump()
}
