// Package storetest is the conformance suite every e2ee.Store passes: call
// Run from a test in the store's package.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"myelin/e2ee"
)

// Run checks the e2ee.Store contract on stores made by newStore (each call
// must return a fresh, empty store).
func Run(t *testing.T, newStore func(t *testing.T) e2ee.Store) {
	ctx := context.Background()
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, e2ee.KindUser, "@a:x"); !errors.Is(err, e2ee.ErrNotFound) {
			t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
		}
	})
	t.Run("PutGetOverwriteDelete", func(t *testing.T) {
		s := newStore(t)
		c := &e2ee.Changes{}
		c.Put(e2ee.KindUser, "@a:x", []byte("one"))
		c.Put(e2ee.KindRoom, "@a:x", []byte("other kind"))
		mustSave(t, s, c)
		expect(t, s, e2ee.KindUser, "@a:x", "one")
		expect(t, s, e2ee.KindRoom, "@a:x", "other kind")
		c = &e2ee.Changes{}
		c.Put(e2ee.KindUser, "@a:x", []byte("two"))
		mustSave(t, s, c)
		expect(t, s, e2ee.KindUser, "@a:x", "two")
		c = &e2ee.Changes{}
		c.Delete(e2ee.KindUser, "@a:x")
		c.Delete(e2ee.KindUser, "never-existed")
		mustSave(t, s, c)
		if _, err := s.Get(ctx, e2ee.KindUser, "@a:x"); !errors.Is(err, e2ee.ErrNotFound) {
			t.Fatalf("after delete: err = %v", err)
		}
		expect(t, s, e2ee.KindRoom, "@a:x", "other kind")
	})
	t.Run("DeleteThenPutInOneBatch", func(t *testing.T) {
		s := newStore(t)
		c := &e2ee.Changes{}
		c.Put(e2ee.KindRoom, "r", []byte("old"))
		mustSave(t, s, c)
		c = &e2ee.Changes{}
		c.Delete(e2ee.KindRoom, "r")
		c.Put(e2ee.KindRoom, "r", []byte("new"))
		mustSave(t, s, c)
		expect(t, s, e2ee.KindRoom, "r", "new")
	})
	t.Run("ListPrefixOrdered", func(t *testing.T) {
		s := newStore(t)
		c := &e2ee.Changes{}
		for _, k := range []string{"b|2", "a|1", "b|1", "b", "c|1", "b|10"} {
			c.Put(e2ee.KindOlmSession, k, []byte("v"+k))
		}
		c.Put(e2ee.KindOlmHash, "b|3", []byte("x"))
		mustSave(t, s, c)
		got, err := s.List(ctx, e2ee.KindOlmSession, "b|")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"b|1", "b|10", "b|2"}
		if len(got) != len(want) {
			t.Fatalf("List = %d records, want %d", len(got), len(want))
		}
		for i, r := range got {
			if r.Key != want[i] || string(r.Value) != "v"+want[i] || r.Kind != e2ee.KindOlmSession {
				t.Fatalf("List[%d] = %s %q %q", i, r.Kind, r.Key, r.Value)
			}
		}
		all, _ := s.List(ctx, e2ee.KindOlmSession, "")
		if len(all) != 6 {
			t.Fatalf("List all = %d, want 6", len(all))
		}
		// Prefixes with LIKE metacharacters are literal.
		c = &e2ee.Changes{}
		c.Put(e2ee.KindRoom, "a%b", []byte("1"))
		c.Put(e2ee.KindRoom, "axb", []byte("2"))
		c.Put(e2ee.KindRoom, "a_c", []byte("3"))
		mustSave(t, s, c)
		if got, _ := s.List(ctx, e2ee.KindRoom, "a%"); len(got) != 1 {
			t.Fatalf("List(a%%) = %d records, want 1", len(got))
		}
		if got, _ := s.List(ctx, e2ee.KindRoom, "a_"); len(got) != 1 {
			t.Fatalf("List(a_) = %d records, want 1", len(got))
		}
	})
	t.Run("BinaryValuesAndKeys", func(t *testing.T) {
		s := newStore(t)
		v := []byte{0, 1, 2, 255, 0, 'x'}
		k := "key with \x00 nul and ünïcode"
		c := &e2ee.Changes{}
		c.Put(e2ee.KindSecret, k, v)
		c.Put(e2ee.KindSecret, "empty", []byte{})
		mustSave(t, s, c)
		got, err := s.Get(ctx, e2ee.KindSecret, k)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get = %x, %v", got, err)
		}
		if got, err := s.Get(ctx, e2ee.KindSecret, "empty"); err != nil || len(got) != 0 {
			t.Fatalf("empty value: %x, %v", got, err)
		}
	})
	t.Run("ValuesAreCopies", func(t *testing.T) {
		s := newStore(t)
		v := []byte("abc")
		c := &e2ee.Changes{}
		c.Put(e2ee.KindUser, "u", v)
		mustSave(t, s, c)
		v[0] = 'X'
		got, _ := s.Get(ctx, e2ee.KindUser, "u")
		got[1] = 'Y'
		expect(t, s, e2ee.KindUser, "u", "abc")
	})
	t.Run("BadBatchChangesNothing", func(t *testing.T) {
		s := newStore(t)
		c := &e2ee.Changes{}
		c.Put(e2ee.KindUser, "u", []byte("keep"))
		mustSave(t, s, c)
		c = &e2ee.Changes{}
		c.Put(e2ee.KindUser, "u", []byte("lost"))
		c.Delete(e2ee.KindUser, "u")
		c.Put("", "bad", []byte("x")) // invalid kind makes the batch fail
		if err := s.Save(ctx, c); err == nil {
			t.Fatal("Save with an empty kind succeeded")
		}
		expect(t, s, e2ee.KindUser, "u", "keep")
	})
	t.Run("EmptyChanges", func(t *testing.T) {
		s := newStore(t)
		mustSave(t, s, &e2ee.Changes{})
	})
	t.Run("ConcurrentSaves", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 20 {
					c := &e2ee.Changes{}
					c.Put(e2ee.KindMegolmIndex, fmt.Sprintf("%d|%d", g, i), []byte("e"))
					if err := s.Save(ctx, c); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		all, err := s.List(ctx, e2ee.KindMegolmIndex, "")
		if err != nil || len(all) != 160 {
			t.Fatalf("after concurrent saves: %d records, %v", len(all), err)
		}
	})
}

// RunPersistent checks that a store written, closed and reopened through
// open (called twice with the same argument semantics) keeps its data.
func RunPersistent(t *testing.T, open func(t *testing.T) e2ee.Store) {
	s := open(t)
	c := &e2ee.Changes{}
	c.Put(e2ee.KindAccount, "self", []byte("pickle"))
	c.Put(e2ee.KindMegolmIndex, "s|5", []byte("$e"))
	mustSave(t, s, c)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t)
	defer s.Close()
	expect(t, s, e2ee.KindAccount, "self", "pickle")
	expect(t, s, e2ee.KindMegolmIndex, "s|5", "$e")
}

func mustSave(t *testing.T, s e2ee.Store, c *e2ee.Changes) {
	t.Helper()
	if err := s.Save(context.Background(), c); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func expect(t *testing.T, s e2ee.Store, k e2ee.Kind, key, want string) {
	t.Helper()
	got, err := s.Get(context.Background(), k, key)
	if err != nil {
		t.Fatalf("Get %s %q: %v", k, key, err)
	}
	if string(got) != want {
		t.Fatalf("Get %s %q = %q, want %q", k, key, got, want)
	}
}
