package e2ee

import (
	"context"
	"errors"
)

// Kind names one table of the machine's persistent state. Stores treat
// kinds as opaque namespaces; the machine owns the record encodings.
type Kind string

// The kinds the machine writes. A Store must accept any non-empty Kind.
const (
	KindAccount       Kind = "account"         // key "self": olm account pickle + own-device metadata
	KindOlmSession    Kind = "olm_session"     // key "<sender curve25519>|<session id>"
	KindOlmHash       Kind = "olm_hash"        // key sha256 of a processed Olm ciphertext (B3)
	KindInboundGroup  Kind = "inbound_group"   // key session id: megolm pickle + provenance
	KindOutboundGroup Kind = "outbound_group"  // key room id: megolm pickle + sharing state
	KindMegolmIndex   Kind = "megolm_index"    // key "<session id>|<index>": replay table (B4)
	KindUser          Kind = "user"            // key user id: pinned identity + devices
	KindCurveIndex    Kind = "curve_index"     // key curve25519: "<user>|<device>" owning it (B10)
	KindRoom          Kind = "room"            // key room id: encryption state, members
	KindRequest       Kind = "request"         // key request id: outgoing request not yet acknowledged
	KindWithheld      Kind = "withheld"        // key session id: m.room_key.withheld hint (B12)
	KindKeyRequest    Kind = "key_request"     // key "<room id>|<session id>": our outstanding m.room_key_request
	KindPendingOlm    Kind = "pending_olm"     // key hash: decrypted Olm plaintext waiting for a device query (sealed)
	KindSecret        Kind = "secret"          // key name: sealed secrets (cross-signing, backup; issue 6)
	KindPendingSend   Kind = "pending_send"    // key "<recipient curve25519>|<request id>": sealed Olm send waiting for a session
	KindOlmEvicted    Kind = "olm_evicted"     // key "<sender curve25519>|<session id>": Olm session evicted (B3 rule 1)
	KindToDeviceSeen  Kind = "todevice_seen"   // key "<hash of sender, device>|<hash of type, request id>": processed request (B3 rule 5)
	KindMegolmWindow  Kind = "megolm_window"   // key session id: timestamps seen for the session (B4 rule 2)
	KindRoomKeyBundle Kind = "room_key_bundle" // key "<room id>|<sender user>": sealed m.room_key_bundle not yet imported (B6 rules 4-5)
)

// ErrNotFound is returned by Store.Get when no record has that kind and key.
var ErrNotFound = errors.New("e2ee: record not found")

// Record is one stored value.
type Record struct {
	Kind  Kind
	Key   string
	Value []byte
}

// RecordKey names a record to delete.
type RecordKey struct {
	Kind Kind
	Key  string
}

// Changes is everything one step of the machine writes. Save applies it
// atomically: after a crash either all of it is stored or none of it.
// Deletes are applied before Puts.
type Changes struct {
	Puts    []Record
	Deletes []RecordKey
}

// IsEmpty reports whether c would change nothing.
func (c *Changes) IsEmpty() bool { return len(c.Puts) == 0 && len(c.Deletes) == 0 }

// Put adds a record to write.
func (c *Changes) Put(k Kind, key string, v []byte) {
	c.Puts = append(c.Puts, Record{Kind: k, Key: key, Value: v})
}

// Delete adds a record to remove.
func (c *Changes) Delete(k Kind, key string) {
	c.Deletes = append(c.Deletes, RecordKey{Kind: k, Key: key})
}

// Store is the persistence the machine needs: loads by key or key prefix, and
// one atomic Save per step. Values handed to Save are owned by the store
// afterwards, and values returned by Get and List are owned by the caller.
//
// Stores see pickles and sealed records only: every secret the machine
// persists is encrypted under the caller's pickle key before it reaches the
// store (olm/megolm Pickle, AES-GCM for other secrets).
type Store interface {
	// Get returns the value of one record, or an error wrapping ErrNotFound.
	Get(ctx context.Context, kind Kind, key string) ([]byte, error)
	// List returns the records of kind whose key starts with prefix,
	// ordered by key.
	List(ctx context.Context, kind Kind, prefix string) ([]Record, error)
	// Save applies c atomically.
	Save(ctx context.Context, c *Changes) error
	// Close releases the store.
	Close() error
}
