package e2ee

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"myelin/crypto/crosssign"
	"myelin/crypto/megolm"
	"myelin/crypto/olm"
	"myelin/id"
	"myelin/keys"
)

// Config is what Open needs.
type Config struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	Store    Store
	// PickleKey (at least 32 bytes) encrypts every secret the machine
	// persists.
	PickleKey []byte
	Rand      io.Reader
	Clock     func() time.Time
	Logger    *slog.Logger // nil: discard
	Policy    TrustPolicy
}

// Machine is the E2EE state machine of one device. Its methods are safe for
// concurrent use (they serialise on one lock).
type Machine struct {
	mu     sync.Mutex
	user   id.UserID
	device id.DeviceID
	store  Store
	pkey   []byte
	seal   cipher.AEAD
	rand   io.Reader
	now    func() time.Time
	log    *slog.Logger
	policy TrustPolicy

	acct     *olm.Account
	meta     *accountRecord
	curve    keys.Curve25519PublicKey
	ed       keys.Ed25519PublicKey
	devKeys  json.RawMessage // our signed device-keys object
	ownTrust *crosssign.OurIdentity

	users    map[string]*userRecord
	rooms    map[string]*roomRecord
	olmSess  map[string][]*olmSession // by sender curve25519
	inbound  map[string]*inboundSession
	outbound map[string]*outboundSession
	reqs     map[string]*Request  // pending requests (nil: not loaded)
	noOlm    map[string]time.Time // curve25519 -> last failed claim
}

// accountRecord is KindAccount "self".
type accountRecord struct {
	UserID           string `json:"user_id"`
	DeviceID         string `json:"device_id"`
	Pickle           []byte `json:"pickle"`
	DeviceKeysPosted bool   `json:"device_keys_posted"`
	LastOTKUpload    int64  `json:"last_otk_upload"`
	FallbackRotated  int64  `json:"fallback_rotated"`
	OldFallback      bool   `json:"old_fallback"`
	Seq              uint64 `json:"seq"`
	// OwnMaster/OwnUserSigning: our own trusted cross-signing identity
	// (set by TrustOwnIdentity; issue 6 sets it after bootstrap/verify).
	OwnMaster      string `json:"own_master,omitempty"`
	OwnUserSigning string `json:"own_user_signing,omitempty"`
}

// olmSend is an Olm-encrypted to-device message waiting for a session
// (KindPendingSend, sealed: it may carry room keys or secrets).
type olmSend struct {
	User    string          `json:"user"`
	Device  string          `json:"device"`
	EvType  string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

const accountKey = "self"

// Open loads the machine's state from cfg.Store, creating the device's Olm
// account on first use (persisted before anything is uploaded).
func Open(ctx context.Context, cfg Config) (*Machine, error) {
	if cfg.UserID.IsZero() || cfg.DeviceID.IsZero() || cfg.Store == nil {
		return nil, errors.New("e2ee: open: user, device and store are required")
	}
	if len(cfg.PickleKey) < 32 {
		return nil, errors.New("e2ee: open: pickle key shorter than 32 bytes")
	}
	if cfg.Rand == nil || cfg.Clock == nil {
		return nil, errors.New("e2ee: open: rand and clock are required")
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	sk, err := hkdf.Key(sha256.New, cfg.PickleKey, nil, "myelin e2ee record seal", 32)
	if err != nil {
		return nil, fmt.Errorf("e2ee: open: %w", err)
	}
	blk, _ := aes.NewCipher(sk)
	aead, _ := cipher.NewGCM(blk)
	m := &Machine{
		user: cfg.UserID, device: cfg.DeviceID, store: cfg.Store,
		pkey: append([]byte(nil), cfg.PickleKey...), seal: aead,
		rand: cfg.Rand, now: cfg.Clock, log: lg, policy: cfg.Policy,
	}
	m.resetCaches()
	m.noOlm = map[string]time.Time{}
	if err := m.loadAccount(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Machine) resetCaches() {
	m.users = map[string]*userRecord{}
	m.rooms = map[string]*roomRecord{}
	m.olmSess = map[string][]*olmSession{}
	m.inbound = map[string]*inboundSession{}
	m.outbound = map[string]*outboundSession{}
	m.reqs = nil
}

// abort drops every cached object after a step failed, so that memory
// matches the store again ("a failed step leaves state unchanged").
func (m *Machine) abort(ctx context.Context) {
	m.resetCaches()
	if err := m.loadAccount(ctx); err != nil {
		m.log.Error("e2ee: reload account after abort", "err", err)
	}
}

func (m *Machine) loadAccount(ctx context.Context) error {
	raw, err := m.store.Get(ctx, KindAccount, accountKey)
	if errors.Is(err, ErrNotFound) {
		return m.createAccount(ctx)
	}
	if err != nil {
		return fmt.Errorf("e2ee: load account: %w", err)
	}
	var rec accountRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return fmt.Errorf("e2ee: load account: %w", err)
	}
	if rec.UserID != m.user.String() || rec.DeviceID != m.device.String() {
		return fmt.Errorf("e2ee: store belongs to %s/%s, not %s/%s", rec.UserID, rec.DeviceID, m.user, m.device)
	}
	acct, err := olm.UnpickleAccount(m.pkey, rec.Pickle)
	if err != nil {
		return fmt.Errorf("e2ee: load account: %w", err)
	}
	m.setAccount(acct, &rec)
	return nil
}

func (m *Machine) createAccount(ctx context.Context) error {
	acct, err := olm.NewAccount(m.rand)
	if err != nil {
		return fmt.Errorf("e2ee: create account: %w", err)
	}
	if err := acct.GenerateFallbackKey(m.rand); err != nil {
		return fmt.Errorf("e2ee: create account: %w", err)
	}
	rec := &accountRecord{UserID: m.user.String(), DeviceID: m.device.String(), FallbackRotated: m.now().UnixMilli()}
	m.setAccount(acct, rec)
	ch := &Changes{}
	if err := m.putAccount(ch); err != nil {
		return err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		return fmt.Errorf("e2ee: create account: %w", err)
	}
	m.log.Info("e2ee: created device account", "user", m.user.String(), "device", m.device.String())
	return nil
}

func (m *Machine) setAccount(acct *olm.Account, rec *accountRecord) {
	m.acct, m.meta = acct, rec
	m.curve, m.ed = acct.IdentityKeys()
	m.devKeys = m.buildDeviceKeys()
	m.ownTrust = nil
	if rec.OwnMaster != "" {
		msk, err1 := keys.ParseEd25519PublicKey(rec.OwnMaster)
		usk, err2 := keys.ParseEd25519PublicKey(rec.OwnUserSigning)
		if err1 == nil && err2 == nil {
			m.ownTrust = &crosssign.OurIdentity{UserID: m.user, MasterKey: msk, UserSigningKey: usk}
		}
	}
}

func (m *Machine) putAccount(ch *Changes) error {
	p, err := m.acct.Pickle(m.pkey)
	if err != nil {
		return fmt.Errorf("e2ee: pickle account: %w", err)
	}
	m.meta.Pickle = p
	return putJSON(ch, KindAccount, accountKey, m.meta)
}

func putJSON(ch *Changes, k Kind, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("e2ee: encode %s: %w", k, err)
	}
	ch.Put(k, key, b)
	return nil
}

func (m *Machine) getJSON(ctx context.Context, k Kind, key string, v any) (bool, error) {
	raw, err := m.store.Get(ctx, k, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("e2ee: load %s: %w", k, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("e2ee: decode %s: %w", k, err)
	}
	return true, nil
}

// sealRecord encrypts a secret record with AES-256-GCM under a key derived
// from the pickle key, bound to its kind and key.
func (m *Machine) sealRecord(k Kind, key string, plain []byte) ([]byte, error) {
	nonce := make([]byte, m.seal.NonceSize())
	if _, err := io.ReadFull(m.rand, nonce); err != nil {
		return nil, fmt.Errorf("e2ee: seal: %w", err)
	}
	return m.seal.Seal(nonce, nonce, plain, []byte(string(k)+"\x00"+key)), nil
}

func (m *Machine) openRecord(k Kind, key string, sealed []byte) ([]byte, error) {
	n := m.seal.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("e2ee: sealed record too short")
	}
	p, err := m.seal.Open(nil, sealed[:n], sealed[n:], []byte(string(k)+"\x00"+key))
	if err != nil {
		return nil, errors.New("e2ee: sealed record does not authenticate")
	}
	return p, nil
}

// SaveSecret stores a secret (sealed under the pickle key) by name, for
// cross-signing and backup keys.
func (m *Machine) SaveSecret(ctx context.Context, name string, secret []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.sealRecord(KindSecret, name, secret)
	if err != nil {
		return err
	}
	ch := &Changes{}
	ch.Put(KindSecret, name, s)
	return m.store.Save(ctx, ch)
}

// LoadSecret returns a secret stored with SaveSecret (ErrNotFound if none).
func (m *Machine) LoadSecret(ctx context.Context, name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.store.Get(ctx, KindSecret, name)
	if err != nil {
		return nil, err
	}
	return m.openRecord(KindSecret, name, s)
}

// UserID returns the machine's user.
func (m *Machine) UserID() id.UserID { return m.user }

// DeviceID returns the machine's device.
func (m *Machine) DeviceID() id.DeviceID { return m.device }

// IdentityKeys returns this device's Curve25519 and Ed25519 keys.
func (m *Machine) IdentityKeys() (keys.Curve25519PublicKey, keys.Ed25519PublicKey) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.curve, m.ed
}

// DeviceKeys returns this device's signed device-keys object.
func (m *Machine) DeviceKeys() json.RawMessage {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append(json.RawMessage(nil), m.devKeys...)
}

// TrustOwnIdentity records our own cross-signing identity as trusted
// (we hold or verified its master key). It makes other users' identities
// "verified" when our user-signing key signed them (threat model B1 rule 6).
func (m *Machine) TrustOwnIdentity(ctx context.Context, master, userSigning keys.Ed25519PublicKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meta.OwnMaster = master.String()
	m.meta.OwnUserSigning = userSigning.String()
	ch := &Changes{}
	if err := m.putAccount(ch); err != nil {
		return err
	}
	// Re-query everyone so that Verified is recomputed.
	if err := m.markAllOutdated(ctx, ch); err != nil {
		return err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return fmt.Errorf("e2ee: trust own identity: %w", err)
	}
	m.setAccount(m.acct, m.meta)
	return nil
}

// newRequestID returns a fresh, ordered request ID (the counter lives in the
// account record, saved with the request).
func (m *Machine) newRequestID() string {
	m.meta.Seq++
	var r [4]byte
	io.ReadFull(m.rand, r[:])
	return fmt.Sprintf("m%012d%s", m.meta.Seq, hex.EncodeToString(r[:]))
}

// queueRequest adds a request to ch (it becomes visible to Outgoing once ch
// is saved). The account record must be put in ch too (sequence counter).
func (m *Machine) queueRequest(ch *Changes, typ RequestType, evType string, body any, meta any) (*Request, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("e2ee: encode request: %w", err)
	}
	r := &Request{ID: m.newRequestID(), Type: typ, EventType: evType, Body: b}
	if meta != nil {
		if r.Meta, err = json.Marshal(meta); err != nil {
			return nil, fmt.Errorf("e2ee: encode request: %w", err)
		}
	}
	if err := m.loadRequests(context.Background()); err != nil {
		return nil, err
	}
	// Visible in the cache now; a failed Save aborts, which drops the cache.
	m.reqs[r.ID] = r
	return r, putJSON(ch, KindRequest, r.ID, r)
}

func (m *Machine) loadRequests(ctx context.Context) error {
	if m.reqs != nil {
		return nil
	}
	recs, err := m.store.List(ctx, KindRequest, "")
	if err != nil {
		return fmt.Errorf("e2ee: list requests: %w", err)
	}
	m.reqs = map[string]*Request{}
	for _, rec := range recs {
		var r Request
		if err := json.Unmarshal(rec.Value, &r); err != nil {
			return fmt.Errorf("e2ee: decode request: %w", err)
		}
		m.reqs[r.ID] = &r
	}
	return nil
}

// pending returns the pending requests of typ ("" for all), by ID.
func (m *Machine) pending(ctx context.Context, typ RequestType) ([]*Request, error) {
	if err := m.loadRequests(ctx); err != nil {
		return nil, err
	}
	var out []*Request
	for _, r := range m.reqs {
		if typ == "" || r.Type == typ {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Request) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Outgoing returns every request waiting to be sent, in order. It first
// creates the requests the state calls for (key upload, device queries).
// Requests are persisted before they are returned, and stay pending until
// MarkSent: sending one twice is harmless.
func (m *Machine) Outgoing(ctx context.Context) ([]Request, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := &Changes{}
	if err := m.planUpload(ctx, ch, nil, nil); err != nil {
		m.abort(ctx)
		return nil, err
	}
	if err := m.planQuery(ctx, ch); err != nil {
		m.abort(ctx)
		return nil, err
	}
	if !ch.IsEmpty() {
		if err := m.putAccount(ch); err != nil {
			m.abort(ctx)
			return nil, err
		}
		if err := m.store.Save(ctx, ch); err != nil {
			m.abort(ctx)
			return nil, fmt.Errorf("e2ee: outgoing: %w", err)
		}
	}
	reqs, err := m.pending(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]Request, len(reqs))
	for i, r := range reqs {
		out[i] = *r
		out[i].Meta = nil
	}
	return out, nil
}

// MarkSent takes the server's response to a request from Outgoing. The
// request is forgotten once its response is processed; an error leaves it
// pending (retry).
func (m *Machine) MarkSent(ctx context.Context, requestID string, response []byte) (*Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.loadRequests(ctx); err != nil {
		return nil, err
	}
	preq, ok := m.reqs[requestID]
	if !ok {
		return nil, fmt.Errorf("e2ee: mark sent %q: %w", requestID, ErrUnknownRequest)
	}
	req := *preq
	var err error
	if len(response) > maxResponseSize {
		return nil, fmt.Errorf("e2ee: mark sent: response of %d bytes: %w", len(response), ErrBadResponse)
	}
	res := &Result{}
	ch := &Changes{}
	ch.Delete(KindRequest, requestID)
	delete(m.reqs, requestID)
	switch req.Type {
	case RequestKeysUpload:
		err = m.uploadDone(ctx, ch, &req, response)
	case RequestKeysQuery:
		err = m.queryDone(ctx, ch, res, &req, response)
	case RequestKeysClaim:
		err = m.claimDone(ctx, ch, res, &req, response)
	case RequestSendToDevice:
	}
	if err != nil {
		m.abort(ctx)
		return nil, err
	}
	if err := m.putAccount(ch); err != nil {
		m.abort(ctx)
		return nil, err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return nil, fmt.Errorf("e2ee: mark sent: %w", err)
	}
	if req.Type == RequestKeysQuery {
		// Olm messages that waited for their sender's device keys.
		if err := m.retryPendingOlm(ctx, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

const maxResponseSize = 32 << 20

// Receive processes one sync response. It never fails because of hostile
// content (that goes to Result.Rejected); errors are storage errors.
func (m *Machine) Receive(ctx context.Context, in SyncInput) (*Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := &Result{}
	ch := &Changes{}
	for _, ru := range in.Rooms {
		if err := m.roomUpdate(ctx, ch, res, ru); err != nil {
			m.abort(ctx)
			return nil, err
		}
	}
	if err := m.deviceLists(ctx, ch, in.DeviceListsChanged, in.DeviceListsLeft); err != nil {
		m.abort(ctx)
		return nil, err
	}
	if err := m.planUpload(ctx, ch, in.OneTimeKeyCounts, in.UnusedFallbackKeyTypes); err != nil {
		m.abort(ctx)
		return nil, err
	}
	if err := m.putAccount(ch); err != nil {
		m.abort(ctx)
		return nil, err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return nil, fmt.Errorf("e2ee: receive: %w", err)
	}
	// To-device events: one step (one Changes) each, so that a hostile
	// event cannot spoil the others.
	for _, ev := range in.ToDevice {
		if err := m.toDevice(ctx, res, ev); err != nil {
			return res, err
		}
	}
	return res, nil
}

var _ = megolm.MaxMessageSize
