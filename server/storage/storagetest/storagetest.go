// Package storagetest is the conformance suite every storage.Store engine
// runs: call [Run] from the engine's tests with a constructor of empty stores.
package storagetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"myelin/server/storage"
)

// Run runs the conformance suite against stores made by open.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Run("Accounts", func(t *testing.T) { testAccounts(t, open(t)) })
	t.Run("AccountData", func(t *testing.T) { testAccountData(t, open(t)) })
	t.Run("Filters", func(t *testing.T) { testFilters(t, open(t)) })
	t.Run("Rooms", func(t *testing.T) { testRooms(t, open(t)) })
	t.Run("ConcurrentWrites", func(t *testing.T) { testConcurrent(t, open(t)) })
	t.Run("AliasesReceiptsMedia", func(t *testing.T) { testMisc(t, open(t)) })
}

func testMisc(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.PutAlias(ctx, "#a:x", "!r:x", "@a:x"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutAlias(ctx, "#a:x", "!q:x", "@b:x"); !errors.Is(err, storage.ErrExists) {
		t.Errorf("duplicate alias: %v", err)
	}
	if r, err := s.ResolveAlias(ctx, "#a:x"); err != nil || r != "!r:x" {
		t.Errorf("resolve: %s %v", r, err)
	}
	if err := s.DeleteAlias(ctx, "#a:x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResolveAlias(ctx, "#a:x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("deleted alias: %v", err)
	}
	p1, err := s.PutReceipt(ctx, storage.Receipt{RoomID: "!r:x", UserID: "@a:x", Type: "m.read", EventID: "$1", TS: 1}, []string{"@a:x"})
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := s.PutReceipt(ctx, storage.Receipt{RoomID: "!r:x", UserID: "@a:x", Type: "m.read", EventID: "$2", TS: 2}, nil)
	rs, _ := s.ReceiptsRange(ctx, "!r:x", 0, s.Pos())
	if len(rs) != 1 || rs[0].EventID != "$2" || rs[0].Pos != p2 || p2 <= p1 {
		t.Errorf("receipts replace: %+v", rs)
	}
	if got, _ := s.RoomsWithReceipts(ctx, []string{"!r:x", "!q:x"}, p1, p2); !got["!r:x"] || got["!q:x"] {
		t.Errorf("rooms with receipts: %v", got)
	}
	m := storage.Media{MediaID: "m1", ContentType: "image/png", Size: 3, Uploader: "@a:x", CreatedTS: 1}
	if err := s.PutMedia(ctx, m); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Media(ctx, "m1"); err != nil || got != m {
		t.Errorf("media: %+v %v", got, err)
	}
	if _, err := s.Media(ctx, "m2"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown media: %v", err)
	}
}

func testAccounts(t *testing.T, s storage.Store) {
	ctx := context.Background()
	u := storage.User{UserID: "@a:x", PasswordHash: "h", CreatedTS: 1}
	dev := storage.Device{UserID: "@a:x", DeviceID: "D1", DisplayName: "one", CreatedTS: 1}
	if err := s.CreateUser(ctx, u, &dev, []byte("tok1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, u, nil, nil); !errors.Is(err, storage.ErrExists) {
		t.Errorf("duplicate user: %v", err)
	}
	if _, err := s.User(ctx, "@nobody:x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("unknown user: %v", err)
	}
	ss, err := s.SessionByToken(ctx, []byte("tok1"))
	if err != nil || ss.DeviceID != "D1" || ss.UserID != "@a:x" {
		t.Fatalf("session: %+v %v", ss, err)
	}
	// Re-login on the same device replaces its token but keeps its name.
	if err := s.Login(ctx, storage.Device{UserID: "@a:x", DeviceID: "D1", CreatedTS: 2}, []byte("tok2")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByToken(ctx, []byte("tok1")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("old token survives re-login")
	}
	if d, err := s.Device(ctx, "@a:x", "D1"); err != nil || d.DisplayName != "one" {
		t.Errorf("device after re-login: %+v %v", d, err)
	}
	if err := s.Login(ctx, storage.Device{UserID: "@a:x", DeviceID: "D2", CreatedTS: 3}, []byte("tok3")); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameDevice(ctx, "@a:x", "D2", "two"); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameDevice(ctx, "@a:x", "D9", "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("rename unknown: %v", err)
	}
	devs, err := s.Devices(ctx, "@a:x")
	if err != nil || len(devs) != 2 {
		t.Fatalf("devices: %v %v", devs, err)
	}
	if err := s.DeleteDevices(ctx, "@a:x", []string{"D1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SessionByToken(ctx, []byte("tok2")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("token of deleted device survives")
	}
	if err := s.DeleteDevices(ctx, "@a:x", nil); err != nil {
		t.Fatal(err)
	}
	if devs, _ := s.Devices(ctx, "@a:x"); len(devs) != 0 {
		t.Errorf("devices after delete all: %v", devs)
	}
	name := "A"
	if err := s.SetProfile(ctx, "@a:x", &name, nil); err != nil {
		t.Fatal(err)
	}
	if u, _ := s.User(ctx, "@a:x"); u.DisplayName != "A" || u.PasswordHash != "h" {
		t.Errorf("profile: %+v", u)
	}
}

func testAccountData(t *testing.T, s storage.Store) {
	ctx := context.Background()
	p1, err := s.PutAccountData(ctx, "@a:x", "", "t1", json.RawMessage(`{"v":1}`))
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := s.PutAccountData(ctx, "@a:x", "!r:x", "t1", json.RawMessage(`{"v":2}`))
	if p2 <= p1 || s.Pos() < p2 {
		t.Errorf("positions: %d %d pos %d", p1, p2, s.Pos())
	}
	if c, err := s.AccountData(ctx, "@a:x", "", "t1"); err != nil || string(c) != `{"v":1}` {
		t.Errorf("get: %s %v", c, err)
	}
	if _, err := s.AccountData(ctx, "@b:x", "", "t1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("other user's data: %v", err)
	}
	items, _ := s.AccountDataRange(ctx, "@a:x", p1, s.Pos())
	if len(items) != 1 || items[0].RoomID != "!r:x" {
		t.Errorf("range: %+v", items)
	}
}

func testFilters(t *testing.T, s storage.Store) {
	ctx := context.Background()
	id, err := s.PutFilter(ctx, "@a:x", json.RawMessage(`{"a":1}`))
	if err != nil {
		t.Fatal(err)
	}
	if f, err := s.Filter(ctx, "@a:x", id); err != nil || string(f) != `{"a":1}` {
		t.Errorf("filter: %s %v", f, err)
	}
	if _, err := s.Filter(ctx, "@b:x", id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("other user's filter: %v", err)
	}
}

func sp(s string) *string { return &s }

func testRooms(t *testing.T, s storage.Store) {
	ctx := context.Background()
	room := "!r:x"
	k := storage.TxnKey{UserID: "@a:x", DeviceID: "D", Path: "PUT /send/1"}
	err := s.WriteRoom(ctx, room, func(w storage.RoomWriter) error {
		if err := w.CreateRoom(storage.Room{RoomID: room, Version: "11", Creator: "@a:x"}); err != nil {
			return err
		}
		for i, ev := range []storage.NewEvent{
			{EventID: "$c", Type: "m.room.create", StateKey: sp(""), Sender: "@a:x", PDU: json.RawMessage(`{}`)},
			{EventID: "$m1", Type: "m.room.member", StateKey: sp("@a:x"), Sender: "@a:x", Membership: "join", PDU: json.RawMessage(`{}`)},
			{EventID: "$msg", Type: "m.room.message", Sender: "@a:x", PDU: json.RawMessage(`{"content":{"body":"x"}}`), TxnID: "1", TxnDevice: "D"},
			{EventID: "$m2", Type: "m.room.member", StateKey: sp("@a:x"), Sender: "@a:x", Membership: "leave", PDU: json.RawMessage(`{}`), ReplacesState: "$m1"},
		} {
			ev.Depth = int64(i + 1)
			if _, err := w.Append(ev); err != nil {
				return err
			}
		}
		return w.PutTxn(k, storage.TxnResult{Status: 200, Body: json.RawMessage(`{"event_id":"$msg"}`)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Txn(ctx, k); err != nil || string(r.Body) != `{"event_id":"$msg"}` {
		t.Errorf("txn: %+v %v", r, err)
	}
	st, _ := s.CurrentState(ctx, room)
	if len(st) != 2 {
		t.Errorf("current state: %d events", len(st))
	}
	m1, _ := s.Event(ctx, "$m1")
	at, _ := s.StateAt(ctx, room, m1.Pos)
	if len(at) != 2 || at[1].EventID != "$m1" {
		t.Errorf("state at m1: %v", at)
	}
	evs, _ := s.Events(ctx, room, 0, s.Pos(), 2, true)
	if len(evs) != 2 || evs[0].EventID != "$msg" || evs[1].EventID != "$m2" {
		t.Errorf("events backward: %v", evs)
	}
	ms, _ := s.UserMemberships(ctx, "@a:x")
	if len(ms) != 1 || ms[0].Membership != "leave" {
		t.Errorf("memberships: %+v", ms)
	}
	// A failing callback leaves nothing behind.
	boom := errors.New("boom")
	err = s.WriteRoom(ctx, room, func(w storage.RoomWriter) error {
		if _, err := w.Append(storage.NewEvent{EventID: "$lost", Type: "m.room.message", Sender: "@a:x", PDU: json.RawMessage(`{}`)}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("callback error: %v", err)
	}
	if _, err := s.Event(ctx, "$lost"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("event of failed write persisted")
	}
}

func testConcurrent(t *testing.T, s storage.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.PutAccountData(ctx, "@a:x", "", fmt.Sprintf("t%d", i), json.RawMessage(`{}`))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	items, _ := s.AccountDataRange(ctx, "@a:x", 0, s.Pos())
	if len(items) != 64 {
		t.Errorf("concurrent writes: %d of 64", len(items))
	}
	seen := map[int64]bool{}
	for _, it := range items {
		if seen[it.Pos] {
			t.Errorf("position %d reused", it.Pos)
		}
		seen[it.Pos] = true
	}
}
