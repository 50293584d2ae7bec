package verification

import (
	"testing"

	"myelin/canonicaljson"
)

// requiredFields are the required content fields of each event, from
// matrix-org/matrix-spec data/event-schemas/schema/m.key.verification.*.yaml
// (and m.room.message$m.key.verification.request.yaml), plus the routing
// field the framework requires for the transport.
var requiredFields = map[string][]string{
	TypeRequest:     {"from_device", "methods", "timestamp"},
	TypeRoomMessage: {"body", "msgtype", "from_device", "methods", "to"},
	TypeReady:       {"from_device", "methods"},
	TypeStart:       {"from_device", "method", "key_agreement_protocols", "hashes", "message_authentication_codes", "short_authentication_string"},
	TypeAccept:      {"method", "key_agreement_protocol", "hash", "message_authentication_code", "short_authentication_string", "commitment"},
	TypeKey:         {"key"},
	TypeMAC:         {"mac", "keys"},
	TypeDone:        {},
	TypeCancel:      {"code", "reason"},
}

// TestWireFieldsMatchSpec checks every message of complete flows (and a
// cancel) against the spec's required fields and routing fields.
func TestWireFieldsMatchSpec(t *testing.T) {
	for _, tr := range []Transport{ToDevice, InRoom} {
		t.Run(tr.String(), func(t *testing.T) {
			w, a, b := pair(t, Options{})
			var sent []Outgoing
			w.tamper = func(from, to *party, in *Incoming) bool {
				sent = append(sent, Outgoing{Type: in.Type, Content: in.Content, Transport: in.Transport})
				return true
			}
			s := request(w, a, b, tr)
			s.sasToEnd(b)
			w2, a2, b2 := pair(t, Options{})
			w2.tamper = w.tamper
			s2 := request(w2, a2, b2, tr)
			a2.do(a2.m.Cancel(w2.now, s2.reqRef))
			seen := map[string]bool{}
			for _, o := range sent {
				obj, err := canonicaljson.ParseObject(o.Content)
				if err != nil {
					t.Fatal(err)
				}
				want, ok := requiredFields[o.Type]
				if !ok {
					t.Fatalf("unexpected event type %s", o.Type)
				}
				for _, k := range want {
					if _, ok := obj[k]; !ok {
						t.Errorf("%s lacks %s: %s", o.Type, k, o.Content)
					}
				}
				isRequest := o.Type == TypeRequest || o.Type == TypeRoomMessage
				switch {
				case tr == ToDevice:
					if _, ok := obj["transaction_id"]; !ok {
						t.Errorf("%s lacks transaction_id", o.Type)
					}
				case !isRequest:
					rel, ok := obj["m.relates_to"].(map[string]any)
					if !ok || rel["rel_type"] != RelReference || rel["event_id"] != s.reqRef.ID && rel["event_id"] != s2.reqRef.ID {
						t.Errorf("%s m.relates_to: %s", o.Type, o.Content)
					}
				}
				seen[o.Type] = true
			}
			for _, typ := range []string{TypeReady, TypeStart, TypeAccept, TypeKey, TypeMAC, TypeDone, TypeCancel} {
				if !seen[typ] {
					t.Errorf("no %s sent", typ)
				}
			}
		})
	}
}
