package e2ee

import "testing"

// FuzzParseBundle feeds arbitrary decrypted room-key bundles to the
// decoder: it must not panic, and never return more than MaxBundleKeys.
func FuzzParseBundle(f *testing.F) {
	f.Add([]byte(`{"room_keys":[{"algorithm":"m.megolm.v1.aes-sha2","room_id":"!r:hs","sender_key":"x","session_id":"s","session_key":"k","sender_claimed_keys":{"ed25519":"e"}}],"withheld":[]}`))
	f.Add([]byte(`{"room_keys":null}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, b []byte) {
		ks, err := parseBundle(b)
		if err == nil && len(ks) > MaxBundleKeys {
			t.Fatalf("%d keys", len(ks))
		}
	})
}
