package rooms

import (
	"testing"
	"time"
)

func BenchmarkBuildMessage(b *testing.B) {
	r := newRoom(b, V11)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.build(alice, "m.room.message", nil, `{"msgtype":"m.text","body":"hello world"}`); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEvent(b *testing.B) {
	r := newRoom(b, V11)
	e := r.mustSend(alice, "m.room.message", nil, `{"msgtype":"m.text","body":"hello world"}`)
	raw := e.JSON()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(V11, raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLoadEvent(b *testing.B) {
	r := newRoom(b, V11)
	e := r.mustSend(alice, "m.room.message", nil, `{"msgtype":"m.text","body":"hello world"}`)
	raw := e.JSON()
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadEvent(V11, e.ID(), raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClient(b *testing.B) {
	r := newRoom(b, V11)
	e := r.mustSend(alice, "m.room.message", nil, `{"msgtype":"m.text","body":"hello world"}`)
	now := time.UnixMilli(e.OriginServerTS() + 10)
	b.ReportAllocs()
	for b.Loop() {
		_ = e.Client(ClientOptions{Now: now})
	}
}

func BenchmarkAuthorizeMessage(b *testing.B) {
	r := newRoom(b, V11)
	e, err := r.build(alice, "m.room.message", nil, `{"body":"x"}`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := Authorize(e, r.st); err != nil {
			b.Fatal(err)
		}
	}
}
