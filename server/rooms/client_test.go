package rooms

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestClientFormat(t *testing.T) {
	r := newRoom(t, V11)
	topic1 := r.mustSend(alice, "m.room.topic", ptr(""), `{"topic":"one"}`)
	topic2 := r.mustSend(alice, "m.room.topic", ptr(""), `{"topic":"two"}`)
	now := time.UnixMilli(topic2.OriginServerTS() + 1500)
	ce := topic2.Client(ClientOptions{Now: now, TransactionID: "txn1", Replaced: topic1})
	b, err := json.Marshal(ce)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"auth_events", "prev_events", "depth", "hashes", "signatures", "origin"} {
		if _, ok := m[k]; ok {
			t.Errorf("client event has %s", k)
		}
	}
	u := m["unsigned"].(map[string]any)
	if m["event_id"] != topic2.ID() || m["room_id"] != r.id || m["state_key"] != "" || u["age"] != 1500.0 ||
		u["transaction_id"] != "txn1" || u["replaces_state"] != topic1.ID() || u["prev_content"].(map[string]any)["topic"] != "one" {
		t.Fatalf("client event %s", b)
	}
	// No transaction ID for other devices, no room_id inside /sync.
	ce = topic2.Client(ClientOptions{Now: now, OmitRoomID: true})
	b, _ = json.Marshal(ce)
	if strings.Contains(string(b), "transaction_id") || strings.Contains(string(b), "room_id") {
		t.Fatalf("client event %s", b)
	}
	// Message events have no state_key; clocks behind the event give age 0.
	msg := r.mustSend(alice, "m.room.message", nil, `{"body":"secret"}`)
	b, _ = json.Marshal(msg.Client(ClientOptions{Now: time.UnixMilli(0)}))
	if strings.Contains(string(b), "state_key") || !strings.Contains(string(b), `"age":0`) {
		t.Fatalf("message %s", b)
	}
	// Redacted: content stripped, redacted_because set.
	red := r.mustSend(alice, TypeRedaction, nil, `{"redacts":"`+msg.ID()+`","reason":"r"}`)
	b, _ = json.Marshal(msg.Client(ClientOptions{Now: now, RedactedBecause: red}))
	if strings.Contains(string(b), "secret") || !strings.Contains(string(b), `"redacted_because":{`) || !strings.Contains(string(b), `"content":{}`) {
		t.Fatalf("redacted message %s", b)
	}
}

func TestInviteState(t *testing.T) {
	r := newRoom(t, V11)
	r.mustSend(alice, "m.room.name", ptr(""), `{"name":"n"}`)
	r.mustSend(alice, "m.room.encryption", ptr(""), `{"algorithm":"m.megolm.v1.aes-sha2"}`)
	r.mustSend(alice, "m.room.secret_state", ptr(""), `{"x":1}`)
	got := r.st.InviteState(alice)
	var types []string
	for _, s := range got {
		types = append(types, s.Type)
	}
	if strings.Join(types, ",") != "m.room.create,m.room.join_rules,m.room.name,m.room.encryption,m.room.member" {
		t.Fatalf("invite state types %v", types)
	}
}
