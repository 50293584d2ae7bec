package api

import (
	"encoding/json"
	"testing"
)

func TestEventFilterAllows(t *testing.T) {
	var f EventFilter
	if err := json.Unmarshal([]byte(`{"types":["m.room.*","x.custom"],"not_types":["m.room.member"],"not_senders":["@spam:x"]}`), &f); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		typ, sender string
		want        bool
	}{
		{"m.room.message", "@a:x", true},
		{"x.custom", "@a:x", true},
		{"m.room.member", "@a:x", false}, // not_types wins over types
		{"m.reaction", "@a:x", false},
		{"m.room.message", "@spam:x", false},
	}
	for _, tc := range tests {
		if got := f.Allows(tc.typ, tc.sender); got != tc.want {
			t.Errorf("Allows(%q, %q) = %v", tc.typ, tc.sender, got)
		}
	}
	var nilFilter *EventFilter
	if !nilFilter.Allows("anything", "@a:x") {
		t.Error("nil filter rejects")
	}
	if n := (&EventFilter{}).LimitOr(10, 100); n != 10 {
		t.Errorf("default limit %d", n)
	}
	big := 1000
	if n := (&EventFilter{Limit: &big}).LimitOr(10, 100); n != 100 {
		t.Errorf("clamped limit %d", n)
	}
}

func TestErrorBody(t *testing.T) {
	e := NewError(429, ErrCodeLimitExceeded, "slow down")
	e.Extra = map[string]any{"retry_after_ms": 5, "errcode": "overridden?"}
	b := e.Body()
	if b["errcode"] != ErrCodeLimitExceeded || b["retry_after_ms"] != 5 || b["error"] != "slow down" {
		t.Errorf("body: %v", b)
	}
}
