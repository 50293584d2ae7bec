package rooms

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"myelin/keys"
)

const (
	alice = "@alice:hs.test"
	bob   = "@bob:hs.test"
	carol = "@carol:hs.test"
	dave  = "@dave:hs.test"
)

func testSigner(t testing.TB) Signer {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	k, err := keys.NewEd25519SecretKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner("hs.test", "a_1", k)
}

// testRoom drives a room the way the server does: build against the
// current state, then Set.
type testRoom struct {
	t      testing.TB
	v      RoomVersion
	id     string
	st     *State
	last   *Event
	signer Signer
	clock  time.Time
	events []*Event
}

func newRoom(t testing.TB, v RoomVersion) *testRoom {
	r := &testRoom{t: t, v: v, id: "!room:hs.test", st: NewState(), signer: testSigner(t),
		clock: time.UnixMilli(1_700_000_000_000)}
	r.mustSend(alice, TypeCreate, ptr(""), `{}`)
	r.mustSend(alice, TypeMember, ptr(alice), `{"membership":"join"}`)
	r.mustSend(alice, TypePowerLevels, ptr(""), `{"users":{"@alice:hs.test":100},"users_default":0,"events_default":0,"state_default":50,"ban":50,"kick":50,"redact":50,"invite":0,"events":{"m.room.name":50,"m.room.power_levels":100}}`)
	r.mustSend(alice, TypeJoinRules, ptr(""), `{"join_rule":"invite"}`)
	r.mustSend(alice, TypeHistoryVisibility, ptr(""), `{"history_visibility":"shared"}`)
	return r
}

func ptr(s string) *string { return &s }

func (r *testRoom) build(sender, typ string, sk *string, content string) (*Event, error) {
	r.clock = r.clock.Add(time.Second)
	pos := Position{Version: r.v, RoomID: r.id, State: r.st, Now: r.clock}
	if r.last != nil {
		pos.PrevEvents = []string{r.last.ID()}
		pos.PrevDepth = r.last.Depth()
	}
	return Build(Proto{Type: typ, StateKey: sk, Sender: sender, Content: json.RawMessage(content)}, pos, r.signer)
}

func (r *testRoom) send(sender, typ string, sk *string, content string) (*Event, error) {
	e, err := r.build(sender, typ, sk, content)
	if err != nil {
		return nil, err
	}
	r.st.Set(e)
	r.last = e
	r.events = append(r.events, e)
	return e, nil
}

func (r *testRoom) mustSend(sender, typ string, sk *string, content string) *Event {
	r.t.Helper()
	e, err := r.send(sender, typ, sk, content)
	if err != nil {
		r.t.Fatalf("%s sends %s %s: %v", sender, typ, content, err)
	}
	return e
}

func (r *testRoom) member(sender, target, membership string) (*Event, error) {
	return r.send(sender, TypeMember, ptr(target), `{"membership":"`+membership+`"}`)
}

func (r *testRoom) mustMember(sender, target, membership string) {
	r.t.Helper()
	if _, err := r.member(sender, target, membership); err != nil {
		r.t.Fatalf("%s sets %s to %s: %v", sender, target, membership, err)
	}
}

// wantForbidden checks that err is an AuthError for the given rule.
func wantForbidden(t testing.TB, err error, rule string) {
	t.Helper()
	var ae *AuthError
	if !errors.Is(err, ErrForbidden) || !errors.As(err, &ae) {
		t.Fatalf("got %v, want ErrForbidden (rule %s)", err, rule)
	}
	if rule != "" && ae.Rule != rule {
		t.Fatalf("rejected by rule %s (%s), want rule %s", ae.Rule, ae.Reason, rule)
	}
}
