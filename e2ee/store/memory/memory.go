// Package memory is the reference e2ee.Store: everything in maps, nothing
// on disk. Use it in tests and for ephemeral clients.
package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"myelin/e2ee"
)

// Store is an in-memory e2ee.Store. It is safe for concurrent use.
type Store struct {
	mu     sync.RWMutex
	data   map[e2ee.Kind]map[string][]byte
	closed bool
}

// New returns an empty store.
func New() *Store { return &Store{data: map[e2ee.Kind]map[string][]byte{}} }

// Get implements e2ee.Store.
func (s *Store) Get(_ context.Context, kind e2ee.Kind, key string) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.data[kind][key]
	if !ok {
		return nil, fmt.Errorf("memory: %s %q: %w", kind, key, e2ee.ErrNotFound)
	}
	return slices.Clone(v), nil
}

// List implements e2ee.Store.
func (s *Store) List(_ context.Context, kind e2ee.Kind, prefix string) ([]e2ee.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []e2ee.Record
	for k, v := range s.data[kind] {
		if strings.HasPrefix(k, prefix) {
			out = append(out, e2ee.Record{Kind: kind, Key: k, Value: slices.Clone(v)})
		}
	}
	slices.SortFunc(out, func(a, b e2ee.Record) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Save implements e2ee.Store. It validates the whole batch before applying
// any of it, so a bad batch changes nothing.
func (s *Store) Save(_ context.Context, c *e2ee.Changes) error {
	for _, r := range c.Puts {
		if r.Kind == "" {
			return fmt.Errorf("memory: save: empty kind")
		}
	}
	for _, r := range c.Deletes {
		if r.Kind == "" {
			return fmt.Errorf("memory: save: empty kind")
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: save: store closed")
	}
	for _, d := range c.Deletes {
		delete(s.data[d.Kind], d.Key)
	}
	for _, r := range c.Puts {
		m := s.data[r.Kind]
		if m == nil {
			m = map[string][]byte{}
			s.data[r.Kind] = m
		}
		m[r.Key] = slices.Clone(r.Value)
	}
	return nil
}

// Close implements e2ee.Store. Data stays readable; writes fail.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
