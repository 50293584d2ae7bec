package interop

import (
	"bytes"
	"fmt"
	"testing"
)

type groupMsg struct {
	msg string
	pt  []byte
}

func groupEncrypt(t *testing.T, o megolmOutbound, n int) []groupMsg {
	t.Helper()
	out := make([]groupMsg, n)
	for i := range out {
		idx := o.MessageIndex()
		pt := []byte(fmt.Sprintf("megolm message %d %s", idx, bytes.Repeat([]byte{'y'}, int(idx%50))))
		m, err := o.Encrypt(pt)
		if err != nil {
			t.Fatalf("group encrypt %d: %v", idx, err)
		}
		out[i] = groupMsg{m, pt}
	}
	return out
}

func groupDecrypt(t *testing.T, s megolmInbound, m groupMsg, wantIndex uint32) {
	t.Helper()
	pt, idx, err := s.Decrypt(m.msg)
	if err != nil {
		t.Fatalf("group decrypt at %d: %v", wantIndex, err)
	}
	if idx != wantIndex || !bytes.Equal(pt, m.pt) {
		t.Fatalf("group decrypt: index %d plaintext %q, want %d %q", idx, pt, wantIndex, m.pt)
	}
}

// TestMegolmSharedAndExported: a session shared (0x02) by one side is
// imported by the other, which decrypts at many indices out of order, and
// exports (0x01) at an index that both sides import.
func TestMegolmSharedAndExported(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		out, err := ia.newOutbound(detRand(100))
		if err != nil {
			t.Fatal(err)
		}
		key := out.Key()
		msgs := groupEncrypt(t, out, 300)
		in, err := ib.newInbound(key)
		if err != nil {
			t.Fatalf("%s imports %s's session key: %v", ib.name, ia.name, err)
		}
		if in.ID() != out.ID() || in.FirstKnownIndex() != 0 || !in.IsVerified() {
			t.Fatalf("inbound: id %s (want %s) first %d verified %v", in.ID(), out.ID(), in.FirstKnownIndex(), in.IsVerified())
		}
		for _, i := range []uint32{299, 0, 255, 256, 1, 257, 100, 0, 299, 128} {
			groupDecrypt(t, in, msgs[i], i)
		}

		exp, err := in.Export(100)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range []*impl{ia, ib} {
			s, err := imp.importInbound(exp)
			if err != nil {
				t.Fatalf("%s imports %s's export: %v", imp.name, ib.name, err)
			}
			if s.ID() != out.ID() || s.FirstKnownIndex() != 100 || s.IsVerified() {
				t.Fatalf("%s import: id %s first %d verified %v", imp.name, s.ID(), s.FirstKnownIndex(), s.IsVerified())
			}
			if _, _, err := s.Decrypt(msgs[99].msg); err == nil {
				t.Errorf("%s decrypted index 99 from an export at 100", imp.name)
			}
			for _, i := range []uint32{256, 100, 299, 101} {
				groupDecrypt(t, s, msgs[i], i)
			}
		}

		late := out.Key() // shared at index 300
		s, err := ib.newInbound(late)
		if err != nil {
			t.Fatal(err)
		}
		if s.FirstKnownIndex() != 300 {
			t.Errorf("late key first index %d", s.FirstKnownIndex())
		}
		more := groupEncrypt(t, out, 2)
		groupDecrypt(t, s, more[1], 301)
		groupDecrypt(t, s, more[0], 300)
		if _, _, err := s.Decrypt(msgs[299].msg); err == nil {
			t.Error("late key decrypted an earlier message")
		}
	})
}

// TestMegolmExportIndices: every implementation imports libolm's session key
// and exports at indices around the 2^8, 2^16 and 2^24 ratchet boundaries;
// the exports must equal libolm's byte for byte, also after a re-import.
func TestMegolmExportIndices(t *testing.T) {
	ref, err := libolmImpl.newOutbound(detRand(200))
	if err != nil {
		t.Fatal(err)
	}
	refIn, err := libolmImpl.newInbound(ref.Key())
	if err != nil {
		t.Fatal(err)
	}
	indices := []uint32{0, 1, 255, 256, 257, 65535, 65536, 65537, 1<<24 - 1, 1 << 24, 1<<24 + 1, 1<<25 + 1}
	want := map[uint32]string{}
	for _, i := range indices {
		if want[i], err = refIn.Export(i); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"myelin", "goolm"} {
		im := impls[name]
		if im == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			in, err := im.newInbound(ref.Key())
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range indices {
				got, err := in.Export(i)
				if err != nil {
					t.Fatalf("export at %d: %v", i, err)
				}
				if got != want[i] {
					t.Errorf("export at %d differs from libolm:\n got  %s\n want %s", i, got, want[i])
				}
			}
			// Re-import at 257 and export further on.
			imp, err := im.importInbound(want[257])
			if err != nil {
				t.Fatal(err)
			}
			for _, i := range []uint32{257, 65536, 1<<24 + 1} {
				if got, err := imp.Export(i); err != nil || got != want[i] {
					t.Errorf("re-export at %d: %v, equal to libolm: %v", i, err, got == want[i])
				}
			}
			if _, err := imp.Export(256); err == nil {
				t.Error("export before the first known index")
			}
		})
	}
}

// TestMegolmTampered: a flipped bit anywhere (payload, MAC, signature) is
// rejected, and the session still decrypts the genuine message.
func TestMegolmTampered(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		out, err := ia.newOutbound(detRand(300))
		if err != nil {
			t.Fatal(err)
		}
		in, err := ib.newInbound(out.Key())
		if err != nil {
			t.Fatal(err)
		}
		m := groupEncrypt(t, out, 1)[0]
		raw := b64(m.msg)
		for _, pos := range []int{4, len(raw) - 64 - 8, len(raw) - 64 - 1, len(raw) - 1} {
			bad := bytes.Clone(raw)
			bad[pos] ^= 0x20
			if _, _, err := in.Decrypt(b64enc(bad)); err == nil {
				t.Errorf("message with byte %d of %d flipped decrypted", pos, len(raw))
			}
		}
		groupDecrypt(t, in, m, 0)
		other, err := ia.newOutbound(detRand(301))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := in.Decrypt(groupEncrypt(t, other, 1)[0].msg); err == nil {
			t.Error("message of another session decrypted")
		}
	})
}

// TestMegolmPlaintextSizes: block boundaries and a 40000-byte plaintext,
// about the largest whose base64 message still fits a 64 KiB event.
func TestMegolmPlaintextSizes(t *testing.T) {
	forPairs(t, func(t *testing.T, ia, ib *impl) {
		out, err := ia.newOutbound(detRand(400))
		if err != nil {
			t.Fatal(err)
		}
		in, err := ib.newInbound(out.Key())
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{0, 1, 15, 16, 17, 40000} {
			if size == 0 && ia.name == "goolm" {
				continue
			}
			idx := out.MessageIndex()
			pt := bytes.Repeat([]byte{'m'}, size)
			m, err := out.Encrypt(pt)
			if err != nil {
				t.Fatal(err)
			}
			groupDecrypt(t, in, groupMsg{m, pt}, idx)
		}
	})
}
