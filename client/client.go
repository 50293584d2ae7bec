package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"myelin/api"
	"myelin/crypto/crosssign"
	"myelin/e2ee"
	"myelin/e2ee/store/memory"
	"myelin/e2ee/store/sqlite"
	"myelin/id"
	"myelin/keys"
)

// Options configures a Client. The zero value keeps everything in memory.
type Options struct {
	// HTTPClient sends requests (default: a fresh http.Client).
	HTTPClient *http.Client
	// Logger receives logs (never secrets or plaintext); nil discards.
	Logger *slog.Logger
	// Store holds the e2ee state. Nil: StoreDir's SQLite store, or memory.
	Store e2ee.Store
	// StoreDir, if set, holds the SQLite e2ee store (e2ee.db), the session
	// (session.json) and, when PickleKey is nil, a generated pickle key
	// (pickle.key, mode 0600).
	StoreDir string
	// PickleKey (32 bytes or more) encrypts the secrets in the store.
	// Nil: read or create StoreDir/pickle.key, or a random key for a
	// memory store.
	PickleKey []byte
	// Policy is the trust policy (zero value: strict).
	Policy e2ee.TrustPolicy
	// Rand and Clock are passed to the e2ee machine (defaults: crypto/rand,
	// time.Now).
	Rand  io.Reader
	Clock func() time.Time
	// EventBuffer is the capacity of the Events channel (default 256).
	// The sync loop waits when it is full.
	EventBuffer int
	// OnEvent, if set, receives every event instead of the Events channel.
	// It runs on the sync goroutine.
	OnEvent func(Event)
	// SyncTimeout is the long-poll timeout (default 30s).
	SyncTimeout time.Duration
	// Backoff spaces retries of failed syncs (default 250ms doubling to 30s).
	Backoff Backoff
	// MaxResponseBytes bounds response bodies (default
	// DefaultMaxResponseBytes).
	MaxResponseBytes int64
	// DeviceDisplayName is sent at login/registration.
	DeviceDisplayName string
}

// Event is what the application receives: a timeline event after
// decryption with its provenance, an event that could not be decrypted
// with the typed reason, an invite, or an alert from the e2ee machine.
type Event struct {
	// RoomID is the room of the event (empty for alerts not tied to a room).
	RoomID string
	// Event is the decrypted event (plaintext type and content) or, when
	// Err is set, the event as the server sent it.
	Event api.ClientEvent
	// Raw is the event as the server sent it (m.room.encrypted for an
	// encrypted event).
	Raw api.ClientEvent
	// Encrypted reports whether the event arrived as m.room.encrypted.
	Encrypted bool
	// Provenance says who sent it and how sure we are (valid when Err is
	// nil).
	Provenance e2ee.Provenance
	// Err is a *e2ee.UTDError when the event could not be decrypted or is
	// hidden by the trust policy; such events must not be shown as
	// normal messages.
	Err error
	// Retried reports a redelivery of an event that was first delivered
	// undecryptable and could be decrypted once its key arrived.
	Retried bool
	// Invite is set for an invitation to RoomID (Event.Sender invited us).
	Invite bool
	// Alert is set for a notice of the e2ee machine (identity change...).
	Alert *e2ee.Alert
}

// Room is what the client knows about a room from its syncs. The
// membership and encryption state are as the (untrusted) server reported
// them; whether to encrypt is decided by the e2ee machine, which never
// forgets that a room was encrypted.
type Room struct {
	ID         string            `json:"id"`
	Name       string            `json:"name,omitempty"`
	Membership string            `json:"membership"` // ours: join, invite, leave
	Members    map[string]string `json:"members"`    // user ID -> membership
	Encrypted  bool              `json:"encrypted"`  // m.room.encryption seen
}

// Client is a logged-in device: HTTP, the e2ee machine and the sync loop.
type Client struct {
	http *HTTP
	m    *e2ee.Machine
	log  *slog.Logger
	opts Options

	store    e2ee.Store
	ownStore bool
	dir      string

	events chan Event

	syncMu sync.Mutex // one sync at a time
	outMu  sync.Mutex // one outgoing flush at a time

	mu      sync.Mutex
	since   string
	rooms   map[string]*Room
	pending []api.ClientEvent // UTD for lack of a session, retried after syncs
	synced  chan struct{}     // closed and replaced after each sync
	running bool

	// toDeviceHook receives the to-device events the e2ee machine did not
	// consume (verification, verify.go); nil drops them.
	toDeviceHook func(context.Context, e2ee.DecryptedToDevice)
	// roomHook receives every timeline event that decrypted (or was
	// plaintext where allowed) before it is delivered: in-room
	// verification events for the verifier.
	roomHook func(context.Context, Event)

	verifier *Verifier
	backup   backupState    // recovery.go
	sharing  *secretSharing // recovery_sharing.go
}

// maxPending bounds the undecryptable events kept for retry.
const maxPending = 1000

// session is the persisted login (StoreDir/session.json).
type session struct {
	Homeserver  string `json:"homeserver"`
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	AccessToken string `json:"access_token"`
	Since       string `json:"since,omitempty"`
	Rooms       []Room `json:"rooms,omitempty"`
}

// Register creates an account on the homeserver, logs its first device in,
// uploads its device keys and sets up cross-signing (the new identity's
// keys are kept sealed in the e2ee store; see CrossSigningKeys).
func Register(ctx context.Context, homeserver, username, password string, o Options) (*Client, error) {
	h, err := newHTTP(homeserver, o)
	if err != nil {
		return nil, err
	}
	if _, err := h.Register(ctx, username, password, "", o.DeviceDisplayName); err != nil {
		return nil, err
	}
	c, err := open(ctx, h, homeserver, o, nil)
	if err != nil {
		return nil, err
	}
	if err := c.bootstrapCrossSigning(ctx, password); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Login logs a new device in with a password and uploads its keys. If
// signer is not nil (the cross-signing keys of the account, obtained from
// another device through verification or secret storage), the new device
// is cross-signed with it.
func Login(ctx context.Context, homeserver, user, password string, signer *crosssign.SigningKeys, o Options) (*Client, error) {
	h, err := newHTTP(homeserver, o)
	if err != nil {
		return nil, err
	}
	if _, err := h.Login(ctx, user, password, "", o.DeviceDisplayName); err != nil {
		return nil, err
	}
	c, err := open(ctx, h, homeserver, o, nil)
	if err != nil {
		return nil, err
	}
	if signer != nil {
		if err := c.adoptCrossSigning(ctx, signer); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Resume reopens the session saved in o.StoreDir.
func Resume(ctx context.Context, o Options) (*Client, error) {
	if o.StoreDir == "" {
		return nil, errors.New("client: resume: no store directory")
	}
	b, err := os.ReadFile(filepath.Join(o.StoreDir, "session.json"))
	if err != nil {
		return nil, fmt.Errorf("client: resume: %w", err)
	}
	var s session
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("client: resume: session.json: %w", err)
	}
	h, err := newHTTP(s.Homeserver, o)
	if err != nil {
		return nil, err
	}
	h.SetSession(s.AccessToken, s.UserID, s.DeviceID)
	return open(ctx, h, s.Homeserver, o, &s)
}

func newHTTP(homeserver string, o Options) (*HTTP, error) {
	return NewHTTP(homeserver, HTTPOptions{HTTPClient: o.HTTPClient, Logger: o.Logger, MaxResponseBytes: o.MaxResponseBytes})
}

func open(ctx context.Context, h *HTTP, homeserver string, o Options, prev *session) (*Client, error) {
	c := &Client{http: h, log: o.Logger, opts: o, rooms: map[string]*Room{}, synced: make(chan struct{}), dir: o.StoreDir}
	if prev != nil {
		c.since = prev.Since
		for i := range prev.Rooms {
			r := prev.Rooms[i]
			if r.ID == "" {
				continue
			}
			if r.Members == nil {
				r.Members = map[string]string{}
			}
			c.rooms[r.ID] = &r
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	n := o.EventBuffer
	if n <= 0 {
		n = 256
	}
	c.events = make(chan Event, n)
	pk := o.PickleKey
	c.store = o.Store
	if o.StoreDir != "" {
		if err := os.MkdirAll(o.StoreDir, 0o700); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		if pk == nil {
			var err error
			if pk, err = loadOrCreateKey(filepath.Join(o.StoreDir, "pickle.key")); err != nil {
				return nil, err
			}
		}
		if c.store == nil {
			st, err := sqlite.Open(ctx, filepath.Join(o.StoreDir, "e2ee.db"))
			if err != nil {
				return nil, fmt.Errorf("client: open store: %w", err)
			}
			c.store, c.ownStore = st, true
		}
	}
	if c.store == nil {
		c.store, c.ownStore = memory.New(), true
	}
	if pk == nil {
		pk = make([]byte, 32)
		if _, err := io.ReadFull(rand.Reader, pk); err != nil {
			return nil, err
		}
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	_, user, device := h.Session()
	uid, err := id.ParseUserID(user)
	if err != nil {
		return nil, fmt.Errorf("client: server gave a bad user ID: %w", err)
	}
	did, err := id.ParseDeviceID(device)
	if err != nil {
		return nil, fmt.Errorf("client: server gave a bad device ID: %w", err)
	}
	m, err := e2ee.Open(ctx, e2ee.Config{UserID: uid, DeviceID: did, Store: c.store, PickleKey: pk,
		Rand: o.Rand, Clock: o.Clock, Logger: o.Logger, Policy: o.Policy})
	if err != nil {
		if c.ownStore {
			c.store.Close()
		}
		return nil, fmt.Errorf("client: %w", err)
	}
	c.m = m
	if err := c.saveSession(homeserver); err != nil {
		return nil, err
	}
	// Upload the device keys now so others can reach this device.
	if err := c.flushOutgoing(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func loadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, errors.New("client: pickle.key is too short")
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("client: %w", err)
	}
	b = make([]byte, 32)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return b, nil
}

func (c *Client) saveSession(homeserver string) error {
	if c.dir == "" {
		return nil
	}
	tok, user, dev := c.http.Session()
	c.mu.Lock()
	s := session{Homeserver: homeserver, UserID: user, DeviceID: dev, AccessToken: tok, Since: c.since}
	c.mu.Unlock()
	s.Rooms = c.Rooms()
	b, _ := json.Marshal(s)
	tmp := filepath.Join(c.dir, "session.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("client: save session: %w", err)
	}
	return os.Rename(tmp, filepath.Join(c.dir, "session.json"))
}

// HTTP returns the underlying API client.
func (c *Client) HTTP() *HTTP { return c.http }

// Machine returns the e2ee machine (identity status, acknowledgements).
func (c *Client) Machine() *e2ee.Machine { return c.m }

// UserID returns the logged-in user.
func (c *Client) UserID() string { return c.http.UserID() }

// DeviceID returns this device's ID.
func (c *Client) DeviceID() string { return c.http.DeviceID() }

// Events returns the channel of decrypted events (unused when
// Options.OnEvent is set).
func (c *Client) Events() <-chan Event { return c.events }

// Close releases the store (if the client opened it). It does not log out.
func (c *Client) Close() error {
	if c.ownStore && c.store != nil {
		return c.store.Close()
	}
	return nil
}

// Logout invalidates the access token and closes the client.
func (c *Client) Logout(ctx context.Context) error {
	err := c.http.Logout(ctx)
	if c.dir != "" && err == nil {
		os.Remove(filepath.Join(c.dir, "session.json"))
	}
	return errors.Join(err, c.Close())
}

// Rooms returns a snapshot of the rooms seen in syncs.
func (c *Client) Rooms() []Room {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Room, 0, len(c.rooms))
	for _, r := range c.rooms {
		cp := *r
		cp.Members = make(map[string]string, len(r.Members))
		for k, v := range r.Members {
			cp.Members[k] = v
		}
		out = append(out, cp)
	}
	slices.SortFunc(out, func(a, b Room) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// Room returns what is known about one room.
func (c *Client) Room(roomID string) (Room, bool) {
	for _, r := range c.Rooms() {
		if r.ID == roomID {
			return r, true
		}
	}
	return Room{}, false
}

// CreateEncryptedRoom creates a private room with Megolm encryption from the
// first event, inviting invitees, and waits until a sync has shown it.
func (c *Client) CreateEncryptedRoom(ctx context.Context, name string, invitees []string) (string, error) {
	room, err := c.http.CreateRoom(ctx, &CreateRoomRequest{
		Name: name, Preset: "private_chat", Invite: invitees,
		InitialState: []InitialState{{Type: "m.room.encryption", Content: map[string]any{"algorithm": crosssign.AlgorithmMegolm}}},
	})
	if err != nil {
		return "", err
	}
	if err := c.m.MarkRoomEncrypted(ctx, room); err != nil {
		return room, fmt.Errorf("client: %w", err)
	}
	return room, c.waitRoom(ctx, room, "join")
}

// Invite invites a user into a room.
func (c *Client) Invite(ctx context.Context, roomID, userID string) error {
	return c.http.Invite(ctx, roomID, userID)
}

// Join joins a room and waits until a sync has shown the join.
func (c *Client) Join(ctx context.Context, roomID string) error {
	if _, err := c.http.Join(ctx, roomID); err != nil {
		return err
	}
	return c.waitRoom(ctx, roomID, "join")
}

// Leave leaves a room and waits until a sync has shown it.
func (c *Client) Leave(ctx context.Context, roomID string) error {
	if err := c.http.Leave(ctx, roomID); err != nil {
		return err
	}
	return c.waitRoom(ctx, roomID, "leave")
}

// SendText sends an m.text message. In a room the e2ee machine knows to be
// encrypted it encrypts (sharing the room key first); otherwise it sends
// plaintext only if the machine allows it (never into a room once seen
// encrypted).
func (c *Client) SendText(ctx context.Context, roomID, text string) (string, error) {
	content, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": text})
	return c.SendMessage(ctx, roomID, "m.room.message", content)
}

// maxEncryptAttempts bounds the Encrypt/flush rounds of one send.
const maxEncryptAttempts = 8

// SendMessage sends a message event of any type (see SendText).
func (c *Client) SendMessage(ctx context.Context, roomID, evType string, content json.RawMessage) (string, error) {
	enc, err := c.m.IsEncrypted(ctx, roomID)
	if err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	txn := c.http.NewTxnID()
	if !enc {
		ok, err := c.m.PlaintextAllowed(ctx, roomID)
		if err != nil {
			return "", fmt.Errorf("client: %w", err)
		}
		if !ok {
			return "", e2ee.ErrPlaintextRefused
		}
		return c.http.SendEvent(ctx, roomID, evType, txn, content)
	}
	for range maxEncryptAttempts {
		out, err := c.m.Encrypt(ctx, roomID, evType, content)
		if errors.Is(err, e2ee.ErrNotReady) {
			if err := c.flushOutgoing(ctx); err != nil {
				return "", err
			}
			continue
		}
		if err != nil {
			return "", err
		}
		// Room keys travel before the message.
		if err := c.flushOutgoing(ctx); err != nil {
			return "", err
		}
		return c.http.SendEvent(ctx, roomID, "m.room.encrypted", txn, out)
	}
	return "", fmt.Errorf("client: send: %w", e2ee.ErrNotReady)
}

// waitRoom waits until a sync shows our membership in room.
func (c *Client) waitRoom(ctx context.Context, room, membership string) error {
	for {
		c.mu.Lock()
		r := c.rooms[room]
		ok := r != nil && r.Membership == membership
		running, ch := c.running, c.synced
		c.mu.Unlock()
		if ok {
			return nil
		}
		if !running {
			if err := c.SyncOnce(ctx, 0); err != nil {
				return err
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// WaitSync waits for the next completed sync (running the loop's work
// itself when Run is not active).
func (c *Client) WaitSync(ctx context.Context) error {
	c.mu.Lock()
	running, ch := c.running, c.synced
	c.mu.Unlock()
	if !running {
		return c.SyncOnce(ctx, 0)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-ch:
		return nil
	}
}

// flushOutgoing sends the machine's pending requests and acknowledges them,
// until none remain (bounded).
func (c *Client) flushOutgoing(ctx context.Context) error {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	for range 10 {
		reqs, err := c.m.Outgoing(ctx)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		if len(reqs) == 0 {
			return nil
		}
		progress := false
		for _, r := range reqs {
			resp, err := c.sendRequest(ctx, r)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				c.log.Warn("client: e2ee request failed", "type", r.Type, "err", err)
				continue
			}
			res, err := c.m.MarkSent(ctx, r.ID, resp)
			if err != nil {
				c.log.Warn("client: e2ee response refused", "type", r.Type, "err", err)
				continue
			}
			progress = true
			c.deliverResult(ctx, res)
		}
		if !progress {
			return fmt.Errorf("client: e2ee requests keep failing")
		}
	}
	return nil
}

func (c *Client) sendRequest(ctx context.Context, r e2ee.Request) (json.RawMessage, error) {
	switch r.Type {
	case e2ee.RequestKeysUpload:
		return c.http.KeysUpload(ctx, r.Body)
	case e2ee.RequestKeysQuery:
		return c.http.KeysQuery(ctx, r.Body)
	case e2ee.RequestKeysClaim:
		return c.http.KeysClaim(ctx, r.Body)
	case e2ee.RequestSendToDevice:
		return c.http.SendToDevice(ctx, r.EventType, r.ID, r.Body)
	}
	return nil, fmt.Errorf("client: unknown e2ee request type %q", r.Type)
}

func (c *Client) deliverResult(ctx context.Context, res *e2ee.Result) {
	if res == nil {
		return
	}
	for i := range res.Alerts {
		a := res.Alerts[i]
		c.deliver(ctx, Event{RoomID: a.RoomID, Alert: &a})
	}
	c.mu.Lock()
	hook := c.toDeviceHook
	c.mu.Unlock()
	if hook != nil {
		for _, td := range res.ToDevice {
			hook(ctx, td)
		}
	}
	for _, r := range res.Rejected {
		c.log.Warn("client: e2ee rejected input", "code", r.Code, "sender", r.Sender, "device", r.DeviceID, "err", r.Err)
	}
}

func (c *Client) deliver(ctx context.Context, ev Event) {
	if ev.Err == nil && ev.Alert == nil && !ev.Invite && ev.Event.Type != "" {
		c.mu.Lock()
		hook := c.roomHook
		c.mu.Unlock()
		if hook != nil {
			hook(ctx, ev)
		}
	}
	if c.opts.OnEvent != nil {
		c.opts.OnEvent(ev)
		return
	}
	select {
	case c.events <- ev:
	case <-ctx.Done():
	}
}

// CrossSigningKeys returns the account's cross-signing keys if this device
// holds them (the registering device does).
func (c *Client) CrossSigningKeys(ctx context.Context) (*crosssign.SigningKeys, error) {
	b, err := c.m.LoadSecret(ctx, secretCrossSigning)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if len(b) != 96 {
		return nil, errors.New("client: stored cross-signing keys are malformed")
	}
	uid, err := id.ParseUserID(c.UserID())
	if err != nil {
		return nil, err
	}
	sk := &crosssign.SigningKeys{UserID: uid}
	for i, dst := range []**keys.Ed25519SecretKey{&sk.Master, &sk.SelfSigning, &sk.UserSigning} {
		if *dst, err = keys.NewEd25519SecretKeyFromSeed(b[32*i : 32*i+32]); err != nil {
			return nil, err
		}
	}
	return sk, nil
}

const secretCrossSigning = "myelin.cross_signing_seeds"

// ResetCrossSigning replaces the account's cross-signing identity with a new
// one (after losing the old keys, for example) and cross-signs this device
// with it. Everyone who pinned the old identity is alerted, and with the
// strict policy cannot send to this user until they acknowledge the change.
//
// It returns once this device's e2ee machine has fetched the new identity
// and pinned it (the machine does not yet connect its own TrustOwnIdentity
// with the identity it fetches, so the reset is acknowledged here); it needs
// syncs to get there, from Run or from itself.
func (c *Client) ResetCrossSigning(ctx context.Context, password string) error {
	if err := c.bootstrapCrossSigning(ctx, password); err != nil {
		return err
	}
	sk, err := c.CrossSigningKeys(ctx)
	if err != nil {
		return err
	}
	master := sk.Master.PublicKey().String()
	sk.Wipe()
	for {
		st, err := c.m.Identity(ctx, c.UserID())
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		if st != nil && st.MasterKey == master {
			if st.ChangePending {
				return c.m.AcknowledgeIdentityChange(ctx, c.UserID())
			}
			return nil
		}
		if err := c.WaitSync(ctx); err != nil {
			return err
		}
	}
}

func (c *Client) bootstrapCrossSigning(ctx context.Context, password string) error {
	uid, err := id.ParseUserID(c.UserID())
	if err != nil {
		return err
	}
	rnd := c.opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	sk, err := crosssign.Generate(rnd, uid)
	if err != nil {
		return fmt.Errorf("client: cross-signing: %w", err)
	}
	mk, err := sk.MasterKeyJSON()
	if err != nil {
		return err
	}
	ssk, err := sk.SelfSigningKeyJSON()
	if err != nil {
		return err
	}
	usk, err := sk.UserSigningKeyJSON()
	if err != nil {
		return err
	}
	seeds := slices.Concat(sk.Master.Seed(), sk.SelfSigning.Seed(), sk.UserSigning.Seed())
	defer clear(seeds)
	// Persist before uploading: a crash must not leave an identity on the
	// server whose keys we lost.
	if err := c.m.SaveSecret(ctx, secretCrossSigning, seeds); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if err := c.http.UploadCrossSigningKeys(ctx, mk, ssk, usk, password); err != nil {
		return err
	}
	return c.adoptCrossSigning(ctx, sk)
}

// adoptCrossSigning trusts sk as our own identity and cross-signs this
// device with its self-signing key.
func (c *Client) adoptCrossSigning(ctx context.Context, sk *crosssign.SigningKeys) error {
	if err := c.m.TrustOwnIdentity(ctx, sk.Master.PublicKey(), sk.UserSigning.PublicKey()); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	signed, err := sk.SignDevice(c.m.DeviceKeys())
	if err != nil {
		return fmt.Errorf("client: cross-sign device: %w", err)
	}
	body, _ := json.Marshal(map[string]map[string]json.RawMessage{c.UserID(): {c.DeviceID(): signed}})
	resp, err := c.http.UploadSignatures(ctx, body)
	if err != nil {
		return err
	}
	var r struct {
		Failures map[string]json.RawMessage `json:"failures"`
	}
	if json.Unmarshal(resp, &r) == nil && len(r.Failures) > 0 {
		return fmt.Errorf("client: signature upload refused: %s", truncate(resp, 300))
	}
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
