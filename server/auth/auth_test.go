package auth

import (
	"bytes"
	"crypto/rand"
	"regexp"
	"strings"
	"testing"
)

func TestPassword(t *testing.T) {
	h, err := HashPassword(rand.Reader, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash format: %s", h)
	}
	if ok, err := VerifyPassword(h, "correct horse"); !ok || err != nil {
		t.Errorf("right password rejected: %v", err)
	}
	if ok, _ := VerifyPassword(h, "correct horsf"); ok {
		t.Errorf("wrong password accepted")
	}
	h2, _ := HashPassword(rand.Reader, "correct horse")
	if h == h2 {
		t.Errorf("salt not random")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=8,t=1,p=1$AAAA$"} {
		if _, err := VerifyPassword(bad, "x"); err == nil {
			t.Errorf("malformed hash %q accepted", bad)
		}
	}
}

var costly = regexp.MustCompile(`m=\+?0*\d{4,}|t=\+?0*\d{2,}`)

func FuzzVerifyPassword(f *testing.F) {
	f.Add("$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "pw")
	f.Add("$argon2id$v=19$m=0,t=0,p=0$$", "")
	f.Fuzz(func(t *testing.T, hash, pw string) {
		if costly.MatchString(hash) {
			return // valid but slow parameters: not what this target is about
		}
		VerifyPassword(hash, pw) // must not panic
	})
}

func TestTokensAndIDs(t *testing.T) {
	a, _ := NewAccessToken(rand.Reader)
	b, _ := NewAccessToken(rand.Reader)
	if a == b || !strings.HasPrefix(a, TokenPrefix) || len(a) != len(TokenPrefix)+43 {
		t.Errorf("tokens: %q %q", a, b)
	}
	if bytes.Equal(HashToken(a), HashToken(b)) || len(HashToken(a)) != 32 {
		t.Errorf("token hash")
	}
	d, _ := NewDeviceID(rand.Reader)
	if len(d) != 10 || strings.ToUpper(d) != d {
		t.Errorf("device ID %q", d)
	}
	if _, err := NewAccessToken(bytes.NewReader(nil)); err == nil {
		t.Errorf("short random source accepted")
	}
}
