package recovery

import (
	"fmt"
	"testing"
)

func BenchmarkEncryptSession(b *testing.B) {
	w := newWorld(b, "")
	v := w.boot.Backup.Trusted("1")
	mac := w.boot.Backup.Key.MACKey()
	s := testSession(b, 1, "!room:example.org", w.dev1)
	r := rnd(2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.EncryptSession(r, w.user, mac, s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestore(b *testing.B) {
	w := newWorld(b, "")
	v := w.boot.Backup.Trusted("1")
	k := w.boot.Backup.Key
	var entries []UploadEntry
	for i := range 100 {
		s := testSession(b, byte(i), fmt.Sprintf("!room%d:example.org", i%10), w.dev1)
		d, err := v.EncryptSession(rnd(byte(i)), w.user, k.MACKey(), s)
		if err != nil {
			b.Fatal(err)
		}
		entries = append(entries, UploadEntry{RoomID: s.RoomID, SessionID: s.SessionID, Data: d})
	}
	body, err := UploadBody(entries)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		got, err := Restore(w.user, k, body)
		if err != nil || len(got.Sessions) != 100 {
			b.Fatal(err)
		}
	}
}
