package sync

import (
	"context"
	"testing"
	"time"
)

func TestToken(t *testing.T) {
	tests := []struct {
		in   string
		want Token
		ok   bool
	}{
		{"s5_2_9", Token{5, 2, 9}, true},
		{"t17", Token{Pos: 17}, true},
		{"42", Token{Pos: 42}, true},
		{"s5_2", Token{}, false},
		{"s-1_0_0", Token{}, false},
		{"sx_0_0", Token{}, false},
		{"", Token{}, false},
		{"t-3", Token{}, false},
	}
	for _, tc := range tests {
		got, err := ParseToken(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseToken(%q) = %+v, %v", tc.in, got, err)
		}
		if tc.ok && tc.in[0] == 's' && got.String() != tc.in {
			t.Errorf("round trip %q -> %q", tc.in, got.String())
		}
	}
}

func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"s1_2_3", "t9", "0", "s__", "s9223372036854775807_0_0", "s1_2_3_4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		if tok.Pos < 0 || tok.Typing < 0 || tok.ToDevice < 0 {
			t.Fatalf("negative position from %q", s)
		}
		back, err := ParseToken(tok.String())
		if err != nil || back != tok {
			t.Fatalf("round trip of %q failed", s)
		}
	})
}

func TestNotifier(t *testing.T) {
	n := NewNotifier()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A change already newer than pos returns at once.
	n.Wake(5, []string{"@a:x"}, false)
	if !n.Wait(ctx, "@a:x", 4) {
		t.Fatal("Wait missed an earlier change")
	}
	// Waiting for another user's change times out.
	short, c2 := context.WithTimeout(ctx, 20*time.Millisecond)
	defer c2()
	if n.Wait(short, "@b:x", 0) {
		t.Fatal("Wait returned without a change for the user")
	}
	// A wake after the wait began releases it.
	got := make(chan bool, 1)
	go func() { got <- n.Wait(ctx, "@b:x", 5) }()
	for {
		n.mu.Lock()
		waiting := len(n.waiters["@b:x"]) > 0
		n.mu.Unlock()
		if waiting {
			break
		}
		time.Sleep(time.Millisecond) // polling a condition, with the test deadline as bound
	}
	n.Wake(6, []string{"@b:x"}, false)
	if !<-got {
		t.Fatal("Wait not woken")
	}
	// Kick wakes without a position; WakeAll wakes everyone.
	go func() { got <- n.Wait(ctx, "@c:x", 100) }()
	for {
		n.mu.Lock()
		waiting := len(n.waiters["@c:x"]) > 0
		n.mu.Unlock()
		if waiting {
			break
		}
		time.Sleep(time.Millisecond)
	}
	n.Kick("@c:x")
	if !<-got {
		t.Fatal("Kick did not wake")
	}
	n.Wake(200, nil, true)
	if !n.Wait(ctx, "@d:x", 150) {
		t.Fatal("WakeAll not seen")
	}
}
