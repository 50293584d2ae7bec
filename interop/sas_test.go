package interop

// SAS (m.sas.v1) against libolm's olm/sas.h, both ways: myelin and libolm
// hold the two ends of each key agreement and must agree on every derived
// byte and on all three MAC encodings; a MAC message built by one side must
// verify on the other.

import (
	"bytes"
	"encoding/hex"
	"testing"

	"myelin/crypto/sas"
	"myelin/id"
	"myelin/interop/libolm"
	"myelin/keys"
)

// sasPairs returns fresh random inputs for a myelin end and a libolm end.
func sasPairs() [][2][]byte {
	var out [][2][]byte
	for i := range 8 {
		out = append(out, [2][]byte{seq(byte(17*i+1), 32), seq(byte(29*i+200), 32)})
	}
	return out
}

// sasEnds builds a myelin end from rm and a libolm end from rl and
// exchanges their keys.
func sasEnds(t *testing.T, rm, rl []byte) (*sas.Established, *libolm.SAS) {
	t.Helper()
	e, err := sas.NewEphemeral(bytes.NewReader(rm))
	if err != nil {
		t.Fatal(err)
	}
	l, err := libolm.NewSAS(append([]byte(nil), rl...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Free)
	lpub, err := l.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetTheirKey(e.PublicKey().String()); err != nil {
		t.Fatal(err)
	}
	lk, err := keys.ParseCurve25519PublicKey(lpub)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Establish(lk)
	if err != nil {
		t.Fatal(err)
	}
	return m, l
}

func TestSASBytesAndMACsAgainstLibolm(t *testing.T) {
	infos := []string{"", "TEST", "MATRIX_KEY_VERIFICATION_SAS|@a:x|A|k1|@b:y|B|k2|txn", "INFO\x00with\xffbytes"}
	inputs := []string{"", "ed25519:DEVICE", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "ed25519:A,ed25519:B"}
	for i, p := range sasPairs() {
		// Both ways: myelin holds the first random in one round and the
		// second in the next; libolm holds the other.
		for dir, r := range [][2][]byte{{p[0], p[1]}, {p[1], p[0]}} {
			m, l := sasEnds(t, r[0], r[1])
			for _, info := range infos {
				for _, n := range []int{5, 6, 32, 100} {
					lb, err := l.GenerateBytes([]byte(info), n)
					if err != nil {
						t.Fatal(err)
					}
					if mb := m.GenerateBytes(info, n); !bytes.Equal(mb, lb) {
						t.Fatalf("pair %d dir %d: bytes(%q, %d): myelin %x, libolm %x", i, dir, info, n, mb, lb)
					}
				}
				for _, in := range inputs {
					for _, c := range []struct {
						m sas.MACMethod
						f func([]byte, []byte) (string, error)
					}{
						{sas.MACv2, l.CalculateMACFixedBase64},
						{sas.MACInsecureLegacyHKDF, l.CalculateMAC},
						{sas.MACInsecureLegacyLongKDF, l.CalculateMACLongKDF},
					} {
						want, err := c.f([]byte(in), []byte(info))
						if err != nil {
							t.Fatal(err)
						}
						got, err := m.CalculateMAC(c.m, in, info)
						if err != nil || got != want {
							t.Fatalf("pair %d dir %d: %v(%q, %q): myelin %s, libolm %s", i, dir, c.m, in, info, got, want)
						}
					}
				}
			}
		}
	}
}

// TestSASFrozenVectorsThroughMyelinAndLibolm: both implementations give the
// frozen libolm values of testdata/libolm-vectors.json from the same inputs.
func TestSASFrozenVectorsThroughMyelinAndLibolm(t *testing.T) {
	m, l := sasEnds(t, seq(0x11, 32), seq(0x33, 32))
	if m.OurPublicKey().String() != "TSe87jE1xJRLKNJ92Amwe+EMNRYNIBMcqn6FV1SY0Hw" || m.TheirPublicKey().String() != "wV0iZUWUVcn/FW5sHaa/t5ELuK9Q8rL5+FPqkyUlnU0" {
		t.Fatal("public keys differ from the frozen vector")
	}
	lb, _ := l.GenerateBytes([]byte("TEST"), 6)
	if hex.EncodeToString(lb) != "a252534631aa" || hex.EncodeToString(m.GenerateBytes("TEST", 6)) != "a252534631aa" {
		t.Fatal("SAS bytes differ from the frozen vector")
	}
}

// TestSASMACMessagesAgainstLibolm: a MAC message computed by libolm (as the
// other device would) verifies in myelin with the keys myelin pinned, and
// myelin's MAC message matches what libolm computes for it.
func TestSASMACMessagesAgainstLibolm(t *testing.T) {
	alice, _ := id.ParseUserID("@alice:example.org")
	bob, _ := id.ParseUserID("@bob:example.org")
	aDev, _ := id.ParseDeviceID("ALICEDEV")
	bDev, _ := id.ParseDeviceID("BOBDEV")
	seed := func(b byte) keys.Ed25519PublicKey {
		k, err := keys.NewEd25519SecretKeyFromSeed(seq(b, 32))
		if err != nil {
			t.Fatal(err)
		}
		return k.PublicKey()
	}
	bobDevKey, bobMSK := seed(1), seed(2)
	aliceDevKey, aliceMSK := seed(3), seed(4)

	m, l := sasEnds(t, seq(0x11, 32), seq(0x33, 32)) // myelin = Alice, libolm = Bob
	flow := sas.Flow{ID: "$request:example.org", Our: sas.Party{User: alice, Device: aDev}, Their: sas.Party{User: bob, Device: bDev}, WeStarted: true}

	for _, c := range []struct {
		m sas.MACMethod
		f func([]byte, []byte) (string, error)
	}{
		{sas.MACv2, l.CalculateMACFixedBase64},
		{sas.MACInsecureLegacyHKDF, l.CalculateMAC},
	} {
		// libolm (Bob) -> myelin (Alice).
		base := "MATRIX_KEY_VERIFICATION_MAC" + bob.String() + bDev.String() + alice.String() + aDev.String() + flow.ID
		devID := "ed25519:" + bDev.String()
		mskID := "ed25519:" + bobMSK.String()
		macDev, _ := c.f([]byte(bobDevKey.String()), []byte(base+devID))
		macMSK, _ := c.f([]byte(bobMSK.String()), []byte(base+mskID))
		list := devID + "," + mskID
		if mskID < devID {
			list = mskID + "," + devID
		}
		keysMAC, _ := c.f([]byte(list), []byte(base+"KEY_IDS"))
		pinned, err := sas.Pin(sas.TheirKeys{Device: bDev, DeviceKey: bobDevKey, MasterKey: bobMSK})
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.VerifyMACs(c.m, flow, pinned, &sas.MACContent{MAC: map[string]string{devID: macDev, mskID: macMSK}, Keys: keysMAC})
		if err != nil || len(got) != 2 {
			t.Fatalf("%v: libolm's MAC message does not verify in myelin: %v", c.m, err)
		}

		// myelin (Alice) -> libolm (Bob).
		content, err := m.MACs(c.m, flow, []sas.Key{sas.DeviceKey(aDev, aliceDevKey), sas.MasterKey(aliceMSK)})
		if err != nil {
			t.Fatal(err)
		}
		abase := "MATRIX_KEY_VERIFICATION_MAC" + alice.String() + aDev.String() + bob.String() + bDev.String() + flow.ID
		for kid, pub := range map[string]keys.Ed25519PublicKey{"ed25519:" + aDev.String(): aliceDevKey, "ed25519:" + aliceMSK.String(): aliceMSK} {
			want, _ := c.f([]byte(pub.String()), []byte(abase+kid))
			if content.MAC[kid] != want {
				t.Errorf("%v: myelin MAC for %s differs from libolm's", c.m, kid)
			}
		}
		ids := []string{"ed25519:" + aDev.String(), "ed25519:" + aliceMSK.String()}
		if ids[1] < ids[0] {
			ids[0], ids[1] = ids[1], ids[0]
		}
		wantKeys, _ := c.f([]byte(ids[0]+","+ids[1]), []byte(abase+"KEY_IDS"))
		if content.Keys != wantKeys {
			t.Errorf("%v: myelin KEY_IDS MAC differs from libolm's", c.m)
		}
	}
}

func BenchmarkSASMAC(b *testing.B) {
	e, _ := sas.NewEphemeral(bytes.NewReader(seq(0x11, 32)))
	o, _ := sas.NewEphemeral(bytes.NewReader(seq(0x33, 32)))
	m, _ := e.Establish(o.PublicKey())
	l, _ := libolm.NewSAS(seq(0x33, 32))
	defer l.Free()
	_ = l.SetTheirKey(e.PublicKey().String())
	in, info := []byte("ed25519:DEVICE"), []byte("MATRIX_KEY_VERIFICATION_MAC@a:xDEV@b:yDEV2txned25519:DEVICE")
	b.Run("impl=myelin", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.CalculateMAC(sas.MACv2, string(in), string(info)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=libolm", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.CalculateMACFixedBase64(in, info); err != nil {
				b.Fatal(err)
			}
		}
	})
}
