package rooms

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestBuildRoomFlow(t *testing.T) {
	for _, v := range SupportedVersions() {
		t.Run(string(v), func(t *testing.T) {
			r := newRoom(t, v)
			create := r.st.Create()
			if create.AuthEvents() == nil || len(create.AuthEvents()) != 0 || len(create.PrevEvents()) != 0 || create.Depth() != 1 {
				t.Fatalf("create: auth %v prev %v depth %d", create.AuthEvents(), create.PrevEvents(), create.Depth())
			}
			if got := r.st.Creator(); got != alice {
				t.Fatalf("creator %q", got)
			}
			r.mustMember(alice, bob, MembershipInvite)
			r.mustMember(bob, bob, MembershipJoin)
			msg := r.mustSend(bob, "m.room.message", nil, `{"msgtype":"m.text","body":"hi"}`)
			if msg.Depth() != int64(len(r.events)) {
				t.Errorf("depth %d, want %d", msg.Depth(), len(r.events))
			}
			// auth events: create, power levels, bob's member event.
			want := []string{create.ID(), r.st.Get(TypePowerLevels, "").ID(), r.st.Get(TypeMember, bob).ID()}
			if got := msg.AuthEvents(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("auth events %v, want %v", got, want)
			}
			for _, e := range r.events {
				if len(e.ID()) != 44 || e.ID()[0] != '$' {
					t.Fatalf("event ID %q", e.ID())
				}
				if err := e.CheckContentHash(); err != nil {
					t.Fatal(err)
				}
				if err := e.VerifySignature("hs.test", "ed25519:a_1", testSigner(t).(*keySigner).key.PublicKey()); err != nil {
					t.Fatal(err)
				}
				// Parsing the PDU again gives the same ID.
				p, err := ParseEvent(v, e.JSON())
				if err != nil {
					t.Fatal(err)
				}
				if p.ID() != e.ID() {
					t.Fatalf("reparsed ID %s != %s", p.ID(), e.ID())
				}
				// The redacted copy keeps ID and signature, fails the content hash
				// only when something was removed.
				red, err := e.Redact()
				if err != nil {
					t.Fatal(err)
				}
				if red.ID() != e.ID() {
					t.Fatal("redaction changed the ID")
				}
				if id, _ := computeEventID(v, red.raw); id != e.ID() {
					t.Fatal("reference hash of the redacted copy differs")
				}
				if err := red.VerifySignature("hs.test", "ed25519:a_1", testSigner(t).(*keySigner).key.PublicKey()); err != nil {
					t.Fatalf("redacted copy: %v", err)
				}
			}
			red, _ := msg.Redact()
			if red.CheckContentHash() == nil {
				t.Error("content hash of a redacted message still matches")
			}
		})
	}
}

func TestBuildV10CreateHasCreator(t *testing.T) {
	r := newRoom(t, V10)
	var c map[string]any
	_ = json.Unmarshal(r.st.Create().Content(), &c)
	if c["creator"] != alice || c["room_version"] != "10" {
		t.Fatalf("v10 create content %v", c)
	}
	r11 := newRoom(t, V11)
	c = nil
	_ = json.Unmarshal(r11.st.Create().Content(), &c)
	if _, ok := c["creator"]; ok || c["room_version"] != "11" {
		t.Fatalf("v11 create content %v", c)
	}
}

func TestBuildRedactsPlacement(t *testing.T) {
	for _, v := range SupportedVersions() {
		r := newRoom(t, v)
		msg := r.mustSend(alice, "m.room.message", nil, `{"body":"x"}`)
		pos := Position{Version: v, RoomID: r.id, State: r.st, PrevEvents: []string{msg.ID()}, PrevDepth: msg.Depth(), Now: r.clock}
		red, err := Build(Proto{Type: TypeRedaction, Sender: alice, Redacts: msg.ID(), Content: json.RawMessage(`{"reason":"spam"}`)}, pos, r.signer)
		if err != nil {
			t.Fatal(err)
		}
		if red.Redacts() != msg.ID() {
			t.Fatalf("%s: Redacts() = %q", v, red.Redacts())
		}
		var top map[string]json.RawMessage
		_ = json.Unmarshal(red.JSON(), &top)
		_, atTop := top["redacts"]
		inContent := strings.Contains(string(top["content"]), `"redacts"`)
		if v == V10 && (!atTop || inContent) || v == V11 && (atTop || !inContent) {
			t.Errorf("%s: redacts at top %v, in content %v", v, atTop, inContent)
		}
		ce := red.Client(ClientOptions{Now: r.clock})
		if ce.Redacts != msg.ID() || !strings.Contains(string(ce.Content), msg.ID()) {
			t.Errorf("%s: client format lacks redacts at top or in content: %+v", v, ce)
		}
	}
}

// Clients that put redacts in content get a working redaction in v10 too.
func TestBuildRedactsFromContent(t *testing.T) {
	for _, v := range SupportedVersions() {
		r := newRoom(t, v)
		msg := r.mustSend(alice, "m.room.message", nil, `{"body":"x"}`)
		red := r.mustSend(alice, TypeRedaction, nil, `{"redacts":"`+msg.ID()+`"}`)
		if red.Redacts() != msg.ID() {
			t.Errorf("%s: Redacts() = %q", v, red.Redacts())
		}
		if _, err := r.build(alice, TypeRedaction, nil, `{"redacts":"not-an-id"}`); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: bad redacts: %v", v, err)
		}
	}
}

func TestBuildTooLarge(t *testing.T) {
	r := newRoom(t, V11)
	body := strings.Repeat("a", MaxEventSize)
	_, err := r.build(alice, "m.room.message", nil, `{"body":"`+body+`"}`)
	var tl *TooLargeError
	if !errors.Is(err, ErrEventTooLarge) || !errors.As(err, &tl) {
		t.Fatalf("got %v, want ErrEventTooLarge", err)
	}
	// Just under the limit with the envelope counted: find the largest body that fits.
	lo, hi := 0, MaxEventSize
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if _, err := r.build(alice, "m.room.message", nil, `{"body":"`+body[:mid]+`"}`); err == nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	e, err := r.build(alice, "m.room.message", nil, `{"body":"`+body[:lo]+`"}`)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(e.JSON()); n != MaxEventSize {
		t.Errorf("largest accepted event is %d bytes, want exactly %d", n, MaxEventSize)
	}
	// Long identifiers.
	_, err = r.build(alice, strings.Repeat("t", 256), nil, `{}`)
	if !errors.As(err, &tl) || tl.What != "type" {
		t.Errorf("long type: %v", err)
	}
	_, err = r.build(alice, "m.x", ptr(strings.Repeat("k", 256)), `{}`)
	if !errors.As(err, &tl) || tl.What != "state_key" {
		t.Errorf("long state key: %v", err)
	}
}

func TestBuildRejectsBadContent(t *testing.T) {
	r := newRoom(t, V11)
	for _, c := range []string{`[]`, `"x"`, `{"a":1.5}`, `{"a":1,"a":2}`, `{"a":1e3}`, `{`} {
		if _, err := r.build(alice, "m.room.message", nil, c); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("content %s: got %v, want ErrInvalidEvent", c, err)
		}
	}
	if _, err := Build(Proto{Type: "m.x", Sender: alice}, Position{Version: "9", RoomID: r.id}, r.signer); !errors.Is(err, ErrUnsupportedRoomVersion) {
		t.Errorf("version 9: %v", err)
	}
}

// Whitespace in the client's content does not count towards the limit;
// the canonical PDU does.
func TestBuildSizeIsCanonical(t *testing.T) {
	r := newRoom(t, V11)
	content := `{"body":    "` + strings.Repeat("a", 1000) + `"` + strings.Repeat(" ", MaxEventSize) + `}`
	e, err := r.build(alice, "m.room.message", nil, content)
	if err != nil {
		t.Fatalf("padded content refused: %v", err)
	}
	if len(e.JSON()) > 2000 {
		t.Fatalf("PDU not canonical: %d bytes", len(e.JSON()))
	}
}
