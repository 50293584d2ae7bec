package e2ee_test

import (
	"strings"
	"testing"

	"myelin/crypto/megolm"
	"myelin/e2ee"
	"myelin/signing"
)

func TestExportImportRoomKeys(t *testing.T) {
	s, a, b, room := setup(t)
	e := b.send(room, "kept")
	a.sync()
	a.mustDecrypt(room, e, "kept")
	exp, err := a.m.ExportRoomKeys(ctx)
	if err != nil || len(exp) == 0 {
		t.Fatalf("export: %v (%d)", err, len(exp))
	}
	fresh := s.newClient(a.user, "ALICE9", e2ee.StrictPolicy())
	fresh.sync(roomState(room, a.user, b.user))
	fresh.flush()
	n, res, err := fresh.m.ImportRoomKeys(ctx, exp)
	if err != nil || n != len(exp) {
		t.Fatalf("import: %d, %v, %+v", n, err, res.Rejected)
	}
	d := fresh.mustDecrypt(room, e, "kept")
	if d.Provenance.Trust != e2ee.TrustForwardedOrBackup {
		t.Fatalf("imported session trusted as %s", d.Provenance.Trust)
	}
	// B5: an unconnected ratchet for a stored session is refused; the
	// stored, authenticated session keeps its binding.
	bad := exp[0]
	raw := make([]byte, megolm.ExportedSessionKeySize)
	raw[0] = megolm.ExportedSessionKeyVersion
	ek0, _ := megolm.ParseExportedSessionKey(bad.SessionKey)
	copy(raw[5+megolm.RatchetSize:], ek0.SigningKey().Bytes())
	bogus, _ := megolm.NewExportedSessionKey(raw)
	bad.SessionKey = bogus.String()
	_, res, _ = a.m.ImportRoomKeys(ctx, []e2ee.ExportedRoomKey{bad})
	if len(res.Rejected) != 1 || res.Rejected[0].Code != e2ee.RejectMegolmUnconnected {
		t.Fatalf("unconnected import: %+v", res.Rejected)
	}
	if d := a.mustDecrypt(room, e, "kept"); d.Provenance.Trust != e2ee.TrustCrossSignedPinned {
		t.Fatalf("binding changed by an import: %s", d.Provenance.Trust)
	}
}

// Issue 6: sessions from authenticated entries of our own backup keep the
// original sender's provenance; unauthenticated entries, and authenticated
// entries that were themselves forwards, do not.
func TestImportAuthenticatedBackupKeepsProvenance(t *testing.T) {
	s, a, b, room := setup(t)
	e := b.send(room, "from backup")
	a.sync()
	a.mustDecrypt(room, e, "from backup")
	exp, err := a.m.ExportRoomKeys(ctx)
	if err != nil || len(exp) == 0 {
		t.Fatalf("export: %v (%d)", err, len(exp))
	}
	for _, tc := range []struct {
		name          string
		authenticated bool
		chain         []string
		want          e2ee.Trust
	}{
		{"authenticated", true, nil, e2ee.TrustCrossSignedPinned},
		{"unauthenticated", false, nil, e2ee.TrustForwardedOrBackup},
		{"authenticated forward", true, []string{"someone"}, e2ee.TrustForwardedOrBackup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh := s.newClient(a.user, "ALICE_"+strings.ReplaceAll(tc.name, " ", "_"), e2ee.StrictPolicy())
			fresh.sync(roomState(room, a.user, b.user))
			fresh.flush()
			keys := append([]e2ee.ExportedRoomKey(nil), exp...)
			for i := range keys {
				keys[i].ForwardingChain = tc.chain
			}
			imp := fresh.m.ImportRoomKeys
			if tc.authenticated {
				imp = fresh.m.ImportAuthenticatedBackupKeys
			}
			if n, res, err := imp(ctx, keys); err != nil || n != len(keys) {
				t.Fatalf("import: %d, %v, %+v", n, err, res.Rejected)
			}
			if d := fresh.mustDecrypt(room, e, "from backup"); d.Provenance.Trust != tc.want {
				t.Fatalf("trust = %s, want %s", d.Provenance.Trust, tc.want)
			}
		})
	}
}

func TestSignBackupAuthData(t *testing.T) {
	_, a, _, _ := setup(t)
	_, ed := a.m.IdentityKeys()
	pub := "XJFPDyg19iEXrUo/5ORDGaYSBfWwRhtB2lWV97tI7yg"
	signed, err := a.m.SignBackupAuthData([]byte(`{"public_key":"` + pub + `","signatures":{"@x:hs":{"ed25519:K":"c2ln"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := signing.Verify(signed, a.user, "ed25519:"+a.device, ed); err != nil {
		t.Fatalf("device signature: %v", err)
	}
	if !strings.Contains(string(signed), `"ed25519:K":"c2ln"`) {
		t.Fatal("existing signature dropped")
	}
	// The device key signs only auth_data-shaped objects.
	for _, bad := range []string{
		`{"public_key":"` + pub + `","user_id":"@alice:hs"}`,
		`{"keys":{"ed25519:X":"` + pub + `"}}`,
		`{"public_key":"not a key"}`,
		`{}`,
	} {
		if _, err := a.m.SignBackupAuthData([]byte(bad)); err == nil {
			t.Errorf("signed %s", bad)
		}
	}
}
