package id

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseServerName(t *testing.T) {
	tests := []struct {
		in   string
		ok   bool
		host string
		port int
	}{
		// The examples of valid server names from the spec appendix.
		{"matrix.org", true, "matrix.org", 0},
		{"matrix.org:8888", true, "matrix.org", 8888},
		{"1.2.3.4", true, "1.2.3.4", 0},
		{"1.2.3.4:1234", true, "1.2.3.4", 1234},
		{"[1234:5678::abcd]", true, "[1234:5678::abcd]", 0},
		{"[1234:5678::abcd]:5678", true, "[1234:5678::abcd]", 5678},
		{"[::1]", true, "[::1]", 0},
		{"[::ffff:1.2.3.4]:8", true, "[::ffff:1.2.3.4]", 8},
		{"MATRIX.ORG", true, "MATRIX.ORG", 0},
		{"localhost:65535", true, "localhost", 65535},
		{"a-b.c", true, "a-b.c", 0},

		{"", false, "", 0},
		{"matrix.org:", false, "", 0},
		{"matrix.org:123456", false, "", 0},
		{"matrix.org:65536", false, "", 0},
		{"matrix.org:80a", false, "", 0},
		{"matrix.org:-1", false, "", 0},
		{"matrix.org:1:2", false, "", 0},
		{"matrix_org", false, "", 0},
		{"mätrix.org", false, "", 0},
		{"matrix.org/x", false, "", 0},
		{"1.2.3.256", false, "", 0},
		{"1.2.3.400:80", false, "", 0},
		{"[1234:5678::abcd", false, "", 0},
		{"[1234:5678::abcd]x", false, "", 0},
		{"[1234:5678::abcd]:", false, "", 0},
		{"[fe80::1%eth0]", false, "", 0},
		{"[1.2.3.4]", false, "", 0},
		{"[:::]", false, "", 0},
		{"[]", false, "", 0},
		{"[g::1]", false, "", 0},
		{"1234:5678::abcd", false, "", 0},
		{strings.Repeat("a", 256), false, "", 0},
	}
	for _, tt := range tests {
		sn, err := ParseServerName(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("ParseServerName(%q) err = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidID) {
				t.Errorf("ParseServerName(%q) error %v does not wrap ErrInvalidID", tt.in, err)
			}
			continue
		}
		if sn.String() != tt.in || sn.Host() != tt.host {
			t.Errorf("ParseServerName(%q) = %q host %q, want host %q", tt.in, sn, sn.Host(), tt.host)
		}
		p, ok := sn.Port()
		if ok != (tt.port != 0) || p != tt.port {
			t.Errorf("ParseServerName(%q).Port() = %d, %v; want %d", tt.in, p, ok, tt.port)
		}
	}
}

func TestParseUserID(t *testing.T) {
	long := "@" + strings.Repeat("a", 255-len("@:example.org")) + ":example.org"
	tests := []struct {
		in            string
		strict, loose bool
	}{
		{"@alice:example.org", true, true},
		{"@a-b.c=d_e/f+g0:example.org:8448", true, true},
		{"@alice:[::1]:8448", true, true},
		{long, true, true},
		{"@" + long[1:] + "x", false, false}, // 256 bytes
		// Historical user IDs: only the lenient parser accepts them.
		{"@Alice:example.org", false, true},
		{"@:example.org", false, true},
		{"@al ice:example.org", false, true},
		{"@日本:example.org", false, true},
		{"@a\x01b:example.org", false, true},
		{"@a\x00b:example.org", false, false},
		{"@a\xffb:example.org", false, false},
		{"@a\xed\xa0\x80b:example.org", false, false}, // UTF-8-encoded surrogate
		{"alice:example.org", false, false},
		{"@alice", false, false},
		{"@alice:", false, false},
		{"@alice:bad_server", false, false},
		{"!alice:example.org", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		u, err := ParseUserID(tt.in)
		if (err == nil) != tt.strict {
			t.Errorf("ParseUserID(%q) err = %v, want ok=%v", tt.in, err, tt.strict)
		}
		if err == nil && (!u.Compliant() || u.String() != tt.in) {
			t.Errorf("ParseUserID(%q) = %q compliant=%v", tt.in, u, u.Compliant())
		}
		u, err = ParseUserIDLenient(tt.in)
		if (err == nil) != tt.loose {
			t.Errorf("ParseUserIDLenient(%q) err = %v, want ok=%v", tt.in, err, tt.loose)
		}
		if err == nil && u.Compliant() != tt.strict {
			t.Errorf("ParseUserIDLenient(%q).Compliant() = %v, want %v", tt.in, u.Compliant(), tt.strict)
		}
	}
}

func TestUserIDParts(t *testing.T) {
	u, err := ParseUserID("@alice:example.org:8448")
	if err != nil {
		t.Fatal(err)
	}
	if u.Localpart() != "alice" || u.ServerName().String() != "example.org:8448" {
		t.Fatalf("parts: %q %q", u.Localpart(), u.ServerName())
	}
	sn, _ := ParseServerName("example.org:8448")
	u2, err := NewUserID("alice", sn)
	if err != nil || u2 != u {
		t.Fatalf("NewUserID = %v, %v", u2, err)
	}
	if _, err := NewUserID("Alice", sn); err == nil {
		t.Fatal("NewUserID accepted an upper-case localpart")
	}
	var zero UserID
	if !zero.IsZero() || zero.Localpart() != "" || !zero.ServerName().IsZero() {
		t.Fatal("zero UserID accessors")
	}
}

func TestDeviceID(t *testing.T) {
	for _, s := range []string{"ABCDEFGHIJ", "dev:ice", "nrS2LrZLRE8vEgR9Fp2HHDNImQRgZhsDwqBY0phd3zM", "日本"} {
		if _, err := ParseDeviceID(s); err != nil {
			t.Errorf("ParseDeviceID(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "a\nb", "a\x00", "a\x7f", "\xff", strings.Repeat("A", 256)} {
		if _, err := ParseDeviceID(s); err == nil {
			t.Errorf("ParseDeviceID(%q) accepted", s)
		}
	}
}

func TestRoomAndEventIDs(t *testing.T) {
	tests := []struct {
		in         string
		room, evnt bool
		server     string
	}{
		{"!abcDEF123:example.org", true, false, "example.org"},
		{"!x y:example.org", true, false, "example.org"},
		{"!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM", true, false, ""},
		{"$acR1l0raoZnm60CBwAVgqbZqoO/mYU81xysh1u7XcJk", false, true, ""},
		{"$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg", false, true, ""},
		{"$abc:example.org", false, true, "example.org"},
		{"!abc", true, false, ""},
		{"!", false, false, ""},
		{"!:example.org", false, false, ""},
		{"!abc:", false, false, ""},
		{"!ab=c", false, false, ""},
		{"!a\x00b:example.org", false, false, ""},
		{"$abc:bad server", false, false, ""},
		{"!" + strings.Repeat("a", 255), false, false, ""},
	}
	for _, tt := range tests {
		r, err := ParseRoomID(tt.in)
		if (err == nil) != tt.room {
			t.Errorf("ParseRoomID(%q) err = %v, want ok=%v", tt.in, err, tt.room)
		}
		if err == nil {
			sn, ok := r.ServerName()
			if ok != (tt.server != "") || sn.String() != tt.server {
				t.Errorf("ParseRoomID(%q).ServerName() = %q, %v", tt.in, sn, ok)
			}
		}
		e, err := ParseEventID(tt.in)
		if (err == nil) != tt.evnt {
			t.Errorf("ParseEventID(%q) err = %v, want ok=%v", tt.in, err, tt.evnt)
		}
		if err == nil {
			sn, _ := e.ServerName()
			if sn.String() != tt.server || e.String() != tt.in {
				t.Errorf("ParseEventID(%q) parts %q", tt.in, sn)
			}
		}
	}
}

func TestRoomAlias(t *testing.T) {
	for _, s := range []string{"#room:example.org", "#Räum mit Leer:example.org:80"} {
		a, err := ParseRoomAlias(s)
		if err != nil {
			t.Errorf("ParseRoomAlias(%q): %v", s, err)
			continue
		}
		if "#"+a.Localpart()+":"+a.ServerName().String() != s {
			t.Errorf("ParseRoomAlias(%q) parts", s)
		}
	}
	for _, s := range []string{"#:example.org", "#room", "room:example.org", "#a\x00:example.org", "#a:b:c"} {
		if _, err := ParseRoomAlias(s); err == nil {
			t.Errorf("ParseRoomAlias(%q) accepted", s)
		}
	}
}

func TestTextRoundTrip(t *testing.T) {
	type doc struct {
		User   UserID     `json:"user"`
		Device DeviceID   `json:"device"`
		Room   RoomID     `json:"room"`
		Event  EventID    `json:"event"`
		Alias  RoomAlias  `json:"alias"`
		Server ServerName `json:"server"`
	}
	in := `{"user":"@a:b.c","device":"DEV","room":"!r:b.c","event":"$e","alias":"#a:b.c","server":"b.c:1"}`
	var d doc
	if err := json.Unmarshal([]byte(in), &d); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(d)
	if err != nil || string(out) != in {
		t.Fatalf("round trip = %s, %v", out, err)
	}
	for _, bad := range []string{
		`{"user":"@A:b.c"}`, `{"device":""}`, `{"room":"r"}`, `{"event":"e"}`, `{"alias":"a"}`, `{"server":"b_c"}`,
	} {
		var d doc
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("Unmarshal(%s) accepted", bad)
		}
	}
}

func TestErrorHasNoInput(t *testing.T) {
	secret := "@SECRETSTUFF:example.org"
	_, err := ParseUserID(secret)
	if err == nil || strings.Contains(err.Error(), "SECRETSTUFF") {
		t.Fatalf("error %v", err)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Kind != "user ID" {
		t.Fatalf("error type %T", err)
	}
}
