package rooms

import (
	"errors"
	"strings"
	"testing"
)

func TestParseEventRejects(t *testing.T) {
	r := newRoom(t, V10)
	good := string(r.mustSend(alice, "m.room.message", nil, `{"body":"x"}`).JSON())
	cases := map[string]string{
		"case variant key":     strings.Replace(good, `{"auth_events"`, `{"Unsigned":{},"auth_events"`, 1),
		"duplicate key":        strings.Replace(good, `{"auth_events"`, `{"depth":1,"auth_events"`, 1),
		"float depth":          strings.Replace(good, `"depth":6`, `"depth":6.5`, 1),
		"string depth":         strings.Replace(good, `"depth":6`, `"depth":"6"`, 1),
		"negative depth":       strings.Replace(good, `"depth":6`, `"depth":-1`, 1),
		"content array":        strings.Replace(good, `"content":{"body":"x"}`, `"content":[]`, 1),
		"bad sender":           strings.Replace(good, `"sender":"@alice:hs.test"`, `"sender":"alice"`, 1),
		"bad room":             strings.Replace(good, `"room_id":"!room:hs.test"`, `"room_id":"room"`, 1),
		"prev not event ID":    strings.Replace(good, `"prev_events":["$`, `"prev_events":["x$`, 1),
		"no hashes":            strings.Replace(good, `"hashes":`, `"hashez":`, 1),
		"signatures not a map": strings.Replace(good, `"signatures":{"hs.test":{`, `"signatures":{"hs.test":{"x":1,`, 1),
		"not an object":        `[]`,
		"invalid JSON":         good[:len(good)-1],
	}
	for name, raw := range cases {
		if raw == good {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := ParseEvent(V10, []byte(raw)); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("%s: got %v, want ErrInvalidEvent", name, err)
		}
	}
	big := `{"x":"` + strings.Repeat("a", maxInputSize) + `"}`
	if _, err := ParseEvent(V10, []byte(big)); !errors.Is(err, ErrEventTooLarge) {
		t.Errorf("huge input: %v", err)
	}
	if _, err := ParseEvent("12", []byte(good)); !errors.Is(err, ErrUnsupportedRoomVersion) {
		t.Errorf("version 12: %v", err)
	}
	if _, err := LoadEvent(V10, "nope", []byte(good)); !errors.Is(err, ErrInvalidEvent) {
		t.Errorf("LoadEvent with a bad ID: %v", err)
	}
}
