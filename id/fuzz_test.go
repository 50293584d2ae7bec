package id

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func addSeeds(f *testing.F) {
	for _, s := range []string{
		"@alice:example.org", "@Alice:example.org", "@:x", "@a:[::1]:80", "@a:1.2.3.4:5",
		"!r:example.org", "!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM", "$e:x", "#a:b",
		"example.org", "[1234:5678::abcd]:5678", "1.2.3.256", "@a:b:c:d", "@\x00:b",
	} {
		f.Add(s)
	}
}

func FuzzParseServerName(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		sn, err := ParseServerName(s)
		if err != nil {
			return
		}
		if sn.String() != s || len(s) > MaxServerNameLength {
			t.Fatalf("accepted %q as %q", s, sn)
		}
		host := sn.Host()
		if p, ok := sn.Port(); ok {
			if p > 65535 || !strings.HasPrefix(s, host+":") {
				t.Fatalf("port %d of %q", p, s)
			}
		} else if host != s {
			t.Fatalf("host %q of %q", host, s)
		}
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 || s[i] <= ' ' {
				t.Fatalf("non-ASCII server name %q", s)
			}
		}
	})
}

func FuzzParseUserID(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		strict, errS := ParseUserID(s)
		loose, errL := ParseUserIDLenient(s)
		if errS == nil && errL != nil {
			t.Fatalf("strict accepted %q but lenient did not", s)
		}
		if errL != nil {
			return
		}
		if len(s) > MaxLength || !utf8.ValidString(s) {
			t.Fatalf("accepted %q", s)
		}
		if loose.String() != s || "@"+loose.Localpart()+":"+loose.ServerName().String() != s {
			t.Fatalf("parts of %q", s)
		}
		if _, err := ParseServerName(loose.ServerName().String()); err != nil {
			t.Fatalf("server name of %q: %v", s, err)
		}
		if loose.Compliant() != (errS == nil) {
			t.Fatalf("Compliant(%q) = %v, strict err %v", s, loose.Compliant(), errS)
		}
		if errS == nil && strict != loose {
			t.Fatalf("strict and lenient differ on %q", s)
		}
	})
}

func FuzzParseOpaqueIDs(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		check := func(str string, err error) {
			if err != nil {
				return
			}
			if str != s || len(s) > MaxLength || !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("accepted %q", s)
			}
		}
		r, err := ParseRoomID(s)
		check(r.String(), err)
		e, err := ParseEventID(s)
		check(e.String(), err)
		a, err := ParseRoomAlias(s)
		check(a.String(), err)
		d, err := ParseDeviceID(s)
		if err == nil && (d.String() != s || !utf8.ValidString(s)) {
			t.Fatalf("device %q", s)
		}
	})
}
