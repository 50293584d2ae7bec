package canonicaljson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// typicalDeviceKeys is a device-keys object as uploaded to /keys/upload,
// with the fields in server (not canonical) order and whitespace.
const typicalDeviceKeys = `{
  "user_id": "@alice:example.com",
  "device_id": "JLAFKJWSCS",
  "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
  "keys": {
    "curve25519:JLAFKJWSCS": "3C5BFWi2Y8MaVvjM8M22DBmh24PmgR0nPvJOIArzgyI",
    "ed25519:JLAFKJWSCS": "lEuiRJBit0IG6nUf5pUzWTUEsRVVe/HJkoKuEww9ULI"
  },
  "signatures": {
    "@alice:example.com": {
      "ed25519:JLAFKJWSCS": "dSO80A01XiigH3uBiDVx/EjzaoycHcjq9lfQX0uWsqxl2giMIiSPR8a4d291W1ihKJL/a+myXS367WT6NAIcBA",
      "ed25519:base64+master+public+key": "MLeSCGb04nZ4ahx1ogFGHi2dbCLN3MOUJHnS1FFkL1jO0jHvLLpzpQ1Z7dOPUovsPy1fLLJgZG8SJi0dF3vxCg"
    }
  },
  "unsigned": {"device_display_name": "Alice's mobile phone"}
}`

// event64K builds a ~64 KiB room event (the federation size limit) with a
// mix of ASCII, non-ASCII and escaped text and nested content.
func event64K() []byte {
	var b strings.Builder
	b.WriteString(`{"type":"m.room.message","sender":"@alice:example.com","room_id":"!room:example.com",`)
	b.WriteString(`"origin_server_ts":1700000000000,"unsigned":{"age":1234},"content":{"msgtype":"m.text","format":"org.matrix.custom.html",`)
	b.WriteString(`"m.mentions":{"user_ids":["@bob:example.com"]},"items":[`)
	for i := 0; b.Len() < 60*1024; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"z":%d,"id":"item-%d","text":"Hello <b>world</b> & friends \u00e9 日本語 \"quoted\" line\nbreak %d","a":[1,2,3]}`, i, i, i)
	}
	b.WriteString(`],"body":"`)
	b.WriteString(strings.Repeat("lorem ipsum ", 300))
	b.WriteString(`"}}`)
	return []byte(b.String())
}

// mapRoundTrip is the decode-into-map-and-re-marshal baseline: duplicate
// keys silently win last, numbers keep their spelling via json.Number.
func mapRoundTrip(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func BenchmarkCanonicalize(b *testing.B) {
	inputs := []struct {
		name string
		in   []byte
	}{
		{"device_keys", []byte(typicalDeviceKeys)},
		{"event_64k", event64K()},
	}
	for _, in := range inputs {
		for _, impl := range []struct {
			name string
			f    func([]byte) ([]byte, error)
		}{
			{"impl=myelin", Canonicalize},
			{"impl=map_roundtrip", mapRoundTrip},
			{"impl=myelin_tree", func(raw []byte) ([]byte, error) {
				v, err := Parse(raw)
				if err != nil {
					return nil, err
				}
				return Marshal(v)
			}},
		} {
			b.Run(in.name+"/"+impl.name, func(b *testing.B) {
				if _, err := impl.f(in.in); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(in.in)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := impl.f(in.in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func TestBenchInputsAgree(t *testing.T) {
	for _, in := range [][]byte{[]byte(typicalDeviceKeys), event64K()} {
		a, err := Canonicalize(in)
		if err != nil {
			t.Fatal(err)
		}
		// encoding/json still escapes U+2028/9 and sorts the same way; the
		// inputs have neither, so both must agree byte for byte.
		m, err := mapRoundTrip(in)
		if err != nil || !bytes.Equal(a, m) {
			t.Fatalf("outputs differ:\n%s\n%s", a, m)
		}
	}
	if n := len(event64K()); n < 60*1024 || n > 65536 {
		t.Fatalf("event size %d", n)
	}
}
