package e2ee

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"myelin/crypto/crosssign"
	"myelin/crypto/olm"
	"myelin/keys"
	"myelin/signing"
)

// UnwedgeInterval is the shortest time between two new Olm sessions created
// to recover from undecryptable messages of one device (B3 rule 4).
const UnwedgeInterval = time.Hour

// NoOlmRetry is how long a device without one-time keys is skipped before
// claiming again.
const NoOlmRetry = 10 * time.Minute

type olmSession struct {
	SessionID string `json:"session_id"`
	Curve     string `json:"curve"`
	Pickle    []byte `json:"pickle"`
	Created   int64  `json:"created"`
	LastUsed  int64  `json:"last_used"`
	s         *olm.Session
}

func (m *Machine) loadOlm(ctx context.Context, curve string) ([]*olmSession, error) {
	if ss, ok := m.olmSess[curve]; ok {
		return ss, nil
	}
	recs, err := m.store.List(ctx, KindOlmSession, curve+"|")
	if err != nil {
		return nil, err
	}
	var out []*olmSession
	for _, r := range recs {
		var s olmSession
		if err := json.Unmarshal(r.Value, &s); err != nil {
			return nil, fmt.Errorf("e2ee: decode olm session: %w", err)
		}
		if s.s, err = olm.UnpickleSession(m.pkey, s.Pickle); err != nil {
			return nil, fmt.Errorf("e2ee: unpickle olm session: %w", err)
		}
		out = append(out, &s)
	}
	m.olmSess[curve] = out
	return out, nil
}

func (m *Machine) putOlm(ch *Changes, s *olmSession) error {
	p, err := s.s.Pickle(m.pkey)
	if err != nil {
		return fmt.Errorf("e2ee: pickle olm session: %w", err)
	}
	s.Pickle = p
	return putJSON(ch, KindOlmSession, s.Curve+"|"+s.SessionID, s)
}

// MaxOlmSessionsPerDevice bounds the Olm sessions kept per sender key: a
// hostile peer could otherwise grow the store without bound by starting
// sessions (each costs it nothing with our fallback key). The least
// recently used are evicted; their IDs are kept (KindOlmEvicted, a few
// bytes each) so that a pre-key message of an evicted session is refused
// as a replay instead of re-creating it (B3 rule 1).
const MaxOlmSessionsPerDevice = 4

// boundOlm evicts the least recently used Olm sessions of curve beyond
// MaxOlmSessionsPerDevice (in ch and in the cache).
func (m *Machine) boundOlm(ch *Changes, curve string) error {
	ss := m.olmSess[curve]
	for len(ss) > MaxOlmSessionsPerDevice {
		lru := 0
		for i, s := range ss {
			if s.LastUsed < ss[lru].LastUsed || (s.LastUsed == ss[lru].LastUsed && s.Created < ss[lru].Created) {
				lru = i
			}
		}
		ev := ss[lru]
		ch.Delete(KindOlmSession, ev.Curve+"|"+ev.SessionID)
		if err := putJSON(ch, KindOlmEvicted, ev.Curve+"|"+ev.SessionID, map[string]int64{"evicted": m.now().UnixMilli()}); err != nil {
			return err
		}
		m.log.Info("e2ee: evicted least recently used olm session", "sender_key", curve, "session_id", ev.SessionID)
		ss = slices.Delete(slices.Clone(ss), lru, lru+1)
	}
	m.olmSess[curve] = ss
	return nil
}

// bestOlm returns the session to encrypt with: the most recently used.
func bestOlm(ss []*olmSession) *olmSession {
	var best *olmSession
	for _, s := range ss {
		if best == nil || s.LastUsed > best.LastUsed || (s.LastUsed == best.LastUsed && s.SessionID < best.SessionID) {
			best = s
		}
	}
	return best
}

// olmPlaintext is the decrypted payload of an Olm message (spec "Olm
// plaintext"); these fields bind it to sender and recipient (B2, B10).
type olmPlaintext struct {
	Type             string            `json:"type"`
	Content          json.RawMessage   `json:"content"`
	Sender           string            `json:"sender"`
	SenderDevice     string            `json:"sender_device,omitempty"`
	Recipient        string            `json:"recipient"`
	RecipientKeys    map[string]string `json:"recipient_keys"`
	Keys             map[string]string `json:"keys"`
	SenderDeviceKeys json.RawMessage   `json:"sender_device_keys,omitempty"`
}

// olmTarget is a device we encrypt to.
type olmTarget struct {
	user string
	d    *deviceRecord
}

// olmPayload builds the full Olm plaintext for a device.
func (m *Machine) olmPayload(t olmTarget, evType string, content []byte) ([]byte, error) {
	return json.Marshal(olmPlaintext{
		Type: evType, Content: content,
		Sender: m.user.String(), SenderDevice: m.device.String(),
		Recipient: t.user, RecipientKeys: map[string]string{"ed25519": t.d.Ed25519},
		Keys:             map[string]string{"ed25519": m.ed.String()},
		SenderDeviceKeys: m.devKeys,
	})
}

// olmEncryptMany encrypts one event per target with its best session, in
// parallel, and returns the m.room.encrypted contents (nil where a target
// has no session). Sessions are persisted in ch.
func (m *Machine) olmEncryptMany(ctx context.Context, ch *Changes, targets []olmTarget, evType string, contents [][]byte) ([]map[string]any, error) {
	sess := make([]*olmSession, len(targets))
	rnd := make([][32]byte, len(targets))
	for i, t := range targets {
		ss, err := m.loadOlm(ctx, t.d.Curve25519)
		if err != nil {
			return nil, err
		}
		sess[i] = bestOlm(ss)
		if _, err := io.ReadFull(m.rand, rnd[i][:]); err != nil {
			return nil, err
		}
	}
	out := make([]map[string]any, len(targets))
	errs := make([]error, len(targets))
	now := m.now().UnixMilli()
	parallel(len(targets), func(i int) {
		s := sess[i]
		if s == nil {
			return
		}
		pt, err := m.olmPayload(targets[i], evType, contents[i])
		if err != nil {
			errs[i] = err
			return
		}
		msg, err := s.s.Encrypt(bytes.NewReader(rnd[i][:]), pt)
		if err != nil {
			errs[i] = err
			return
		}
		s.LastUsed = now
		if s.Pickle, err = s.s.Pickle(m.pkey); err != nil {
			errs[i] = err
			return
		}
		out[i] = map[string]any{
			"algorithm":  crosssign.AlgorithmOlm,
			"sender_key": m.curve.String(),
			"ciphertext": map[string]any{targets[i].d.Curve25519: map[string]any{
				"type": int(msg.Type()), "body": keys.EncodeBase64(msg.Marshal()),
			}},
		}
	})
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("e2ee: olm encrypt: %w", err)
		}
		if sess[i] != nil {
			if err := putJSON(ch, KindOlmSession, sess[i].Curve+"|"+sess[i].SessionID, sess[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// parallel runs f(0..n-1) on GOMAXPROCS workers.
func parallel(n int, f func(i int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	next := 0
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}

// toDeviceBody groups contents by user and device for /sendToDevice.
func toDeviceBody(targets []olmTarget, contents []map[string]any) map[string]any {
	msgs := map[string]map[string]any{}
	for i, t := range targets {
		if contents[i] == nil {
			continue
		}
		if msgs[t.user] == nil {
			msgs[t.user] = map[string]any{}
		}
		msgs[t.user][t.d.DeviceID] = contents[i]
	}
	return map[string]any{"messages": msgs}
}

// ---- receiving ----

func (m *Machine) toDevice(ctx context.Context, res *Result, ev ToDeviceEvent) error {
	if len(ev.Content) > maxEventSize {
		res.reject(RejectMalformed, ev.Sender, "", errors.New("e2ee: to-device event too large"))
		return nil
	}
	switch ev.Type {
	case "m.room.encrypted":
		return m.olmReceive(ctx, res, ev)
	case "m.room_key", "m.forwarded_room_key", "m.secret.send", "m.room_key_bundle", "m.dummy":
		// Key- and secret-bearing events count only over Olm (A4 rule 3).
		res.reject(RejectUnencryptedKeyEvent, ev.Sender, "", fmt.Errorf("e2ee: %s arrived unencrypted; such events are accepted only inside Olm", ev.Type))
		return nil
	case "m.room_key.withheld":
		return m.withheldReceive(ctx, res, ev)
	case "m.room_key_request":
		return m.keyRequestReceive(ctx, res, ev)
	case "m.secret.request":
		return m.secretRequestReceive(ctx, res, ev.Sender, DecryptedToDevice{Type: ev.Type, Sender: ev.Sender, Content: ev.Content})
	default:
		res.ToDevice = append(res.ToDevice, DecryptedToDevice{Type: ev.Type, Sender: ev.Sender, Content: ev.Content})
	}
	return nil
}

type olmEnvelope struct {
	Algorithm  string `json:"algorithm"`
	SenderKey  string `json:"sender_key"`
	Ciphertext map[string]struct {
		Type int    `json:"type"`
		Body string `json:"body"`
	} `json:"ciphertext"`
}

// errOlmReplay marks a pre-key message of a session we already hold whose
// message key is spent.
var errOlmReplay = errors.New("e2ee: olm message already processed (replay)")

func (m *Machine) olmReceive(ctx context.Context, res *Result, ev ToDeviceEvent) error {
	var alg struct {
		Algorithm string `json:"algorithm"`
	}
	if err := json.Unmarshal(ev.Content, &alg); err != nil {
		res.reject(RejectMalformed, ev.Sender, "", fmt.Errorf("e2ee: to-device m.room.encrypted does not parse: %w", err))
		return nil
	}
	if alg.Algorithm != crosssign.AlgorithmOlm {
		// A4 rule 1: to-device encryption is Olm or nothing.
		res.reject(RejectToDeviceNotOlm, ev.Sender, "", fmt.Errorf("e2ee: to-device event encrypted with %q, not Olm: refused before any decryption", alg.Algorithm))
		return nil
	}
	var env olmEnvelope
	if err := json.Unmarshal(ev.Content, &env); err != nil {
		res.reject(RejectMalformed, ev.Sender, "", fmt.Errorf("e2ee: to-device m.room.encrypted does not parse: %w", err))
		return nil
	}
	senderCurve, err := keys.ParseCurve25519PublicKey(env.SenderKey)
	if err != nil {
		res.reject(RejectMalformed, ev.Sender, "", fmt.Errorf("e2ee: olm sender_key: %w", err))
		return nil
	}
	entry, ok := env.Ciphertext[m.curve.String()]
	if !ok {
		res.reject(RejectMalformed, ev.Sender, "", errors.New("e2ee: olm event has no ciphertext for this device"))
		return nil
	}
	raw, err := keys.DecodeBase64Lenient(entry.Body)
	if err != nil || len(raw) > olm.MaxMessageSize {
		res.reject(RejectMalformed, ev.Sender, "", errors.New("e2ee: olm body is not base64 or too large"))
		return nil
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|", senderCurve.String(), entry.Type)
	h.Write(raw)
	hash := hex.EncodeToString(h.Sum(nil))
	if _, err := m.store.Get(ctx, KindOlmHash, hash); err == nil {
		res.reject(RejectOlmReplay, ev.Sender, "", errors.New("e2ee: this Olm message was already processed: replay refused"))
		return nil
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	msg, err := olm.ParseMessage(olm.MessageType(entry.Type), raw)
	if err != nil {
		res.reject(RejectMalformed, ev.Sender, "", fmt.Errorf("e2ee: olm message: %w", err))
		return nil
	}
	ch := &Changes{}
	pt, sess, created, err := m.olmDecrypt(ctx, senderCurve, msg)
	if err != nil {
		m.abort(ctx)
		code := RejectOlmDecrypt
		if errors.Is(err, errOlmReplay) {
			code = RejectOlmReplay
		}
		res.reject(code, ev.Sender, "", err)
		if code == RejectOlmDecrypt {
			return m.maybeUnwedge(ctx, senderCurve.String())
		}
		return nil
	}
	ch.Put(KindOlmHash, hash, []byte{1})
	sess.LastUsed = m.now().UnixMilli()
	if err := m.putOlm(ch, sess); err != nil {
		return err
	}
	if created {
		m.olmSess[sess.Curve] = append(m.olmSess[sess.Curve], sess)
		if err := m.boundOlm(ch, sess.Curve); err != nil {
			return err
		}
		if err := m.putAccount(ch); err != nil {
			return err
		}
	}
	if err := m.olmDispatch(ctx, ch, res, ev.Sender, senderCurve.String(), pt, hash); err != nil {
		m.abort(ctx)
		return err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return fmt.Errorf("e2ee: olm receive: %w", err)
	}
	return nil
}

// olmDecrypt decrypts with an existing session or, for a pre-key message
// that matches none, a new inbound session (created = true).
func (m *Machine) olmDecrypt(ctx context.Context, curve keys.Curve25519PublicKey, msg olm.Message) ([]byte, *olmSession, bool, error) {
	ss, err := m.loadOlm(ctx, curve.String())
	if err != nil {
		return nil, nil, false, err
	}
	if pk, ok := msg.(*olm.PreKeyMessage); ok {
		for _, s := range ss {
			if s.s.MatchesInbound(curve, pk) {
				pt, err := s.s.Decrypt(pk)
				if err != nil {
					// The session exists and the key is spent: a replay
					// must never create a second session (B3 rule 1).
					return nil, nil, false, fmt.Errorf("%w: %v", errOlmReplay, err)
				}
				return pt, s, false, nil
			}
		}
		s, pt, err := m.acct.NewInboundSession(curve, pk)
		if err != nil {
			return nil, nil, false, fmt.Errorf("e2ee: olm pre-key message: %w", err)
		}
		// A session we evicted must not come back from a pre-key message
		// (B3 rule 1); the caller's abort restores the account.
		if _, err := m.store.Get(ctx, KindOlmEvicted, curve.String()+"|"+s.ID()); err == nil {
			return nil, nil, false, fmt.Errorf("%w: the message belongs to an evicted session", errOlmReplay)
		} else if !errors.Is(err, ErrNotFound) {
			return nil, nil, false, err
		}
		now := m.now().UnixMilli()
		return pt, &olmSession{SessionID: s.ID(), Curve: curve.String(), Created: now, LastUsed: now, s: s}, true, nil
	}
	var last error = errors.New("e2ee: no olm session with this sender")
	for _, s := range ss {
		pt, err := s.s.Decrypt(msg)
		if err == nil {
			return pt, s, false, nil
		}
		last = err
	}
	return nil, nil, false, fmt.Errorf("e2ee: olm message: %w", last)
}

// checkOlmBinding applies the spec's checks on a decrypted Olm plaintext
// (B2 rule 1, B10 rule 1). It returns the sender's device, nil if unknown
// (then the caller queries and retries), or an error for a mismatch.
func (m *Machine) checkOlmBinding(ctx context.Context, envSender, curve string, pt *olmPlaintext) (*userRecord, *deviceRecord, error) {
	if pt.Sender != envSender {
		return nil, nil, fmt.Errorf("e2ee: olm plaintext sender %q differs from the envelope sender %q", pt.Sender, envSender)
	}
	if pt.Recipient != m.user.String() {
		return nil, nil, fmt.Errorf("e2ee: olm plaintext is addressed to %q, not to us", pt.Recipient)
	}
	if pt.RecipientKeys["ed25519"] != m.ed.String() {
		return nil, nil, errors.New("e2ee: olm plaintext recipient_keys.ed25519 is not our device key")
	}
	claimedEd := pt.Keys["ed25519"]
	if claimedEd == "" {
		return nil, nil, errors.New("e2ee: olm plaintext lacks keys.ed25519")
	}
	if len(pt.SenderDeviceKeys) > 0 {
		dev, err := crosssign.ParseDeviceKeys(pt.SenderDeviceKeys)
		if err != nil {
			return nil, nil, fmt.Errorf("e2ee: olm sender_device_keys invalid: %w", err)
		}
		if dev.UserID.String() != envSender || dev.Curve25519.String() != curve || dev.Ed25519.String() != claimedEd {
			return nil, nil, errors.New("e2ee: olm sender_device_keys do not match the sender, the olm sender key or keys.ed25519")
		}
	}
	u, d, err := m.deviceByCurve(ctx, curve)
	if err != nil {
		return nil, nil, err
	}
	if d == nil {
		return u, nil, nil
	}
	if u.UserID != envSender {
		return nil, nil, fmt.Errorf("e2ee: olm sender key belongs to %s, but the event claims %s", u.UserID, envSender)
	}
	if d.Ed25519 != claimedEd {
		return nil, nil, errors.New("e2ee: olm plaintext keys.ed25519 is not the ed25519 key of the device owning the sender key")
	}
	if !d.usable() {
		return nil, nil, fmt.Errorf("e2ee: device %s of %s is distrusted (keys changed or reused)", d.DeviceID, u.UserID)
	}
	return u, d, nil
}

type pendingOlm struct {
	Sender    string `json:"sender"`
	Curve     string `json:"curve"`
	Plaintext []byte `json:"plaintext"` // sealed
	Tries     int    `json:"tries"`
}

const maxPendingOlm = 1000

func (m *Machine) olmDispatch(ctx context.Context, ch *Changes, res *Result, envSender, curve string, raw []byte, hash string) error {
	var pt olmPlaintext
	if err := json.Unmarshal(raw, &pt); err != nil {
		res.reject(RejectMalformed, envSender, "", fmt.Errorf("e2ee: olm plaintext does not parse: %w", err))
		return nil
	}
	u, d, err := m.checkOlmBinding(ctx, envSender, curve, &pt)
	if err != nil {
		res.reject(RejectOlmBindingMismatch, envSender, "", err)
		return nil
	}
	if d == nil {
		// Unknown sender device: keep the plaintext (sealed) and ask the
		// server for the sender's keys; retried after /keys/query.
		if n, err := m.store.List(ctx, KindPendingOlm, ""); err != nil {
			return err
		} else if len(n) >= maxPendingOlm {
			res.reject(RejectUnknownSenderDevice, envSender, "", errors.New("e2ee: too many messages from unknown devices waiting"))
			return nil
		}
		sealed, err := m.sealRecord(KindPendingOlm, hash, raw)
		if err != nil {
			return err
		}
		if err := putJSON(ch, KindPendingOlm, hash, pendingOlm{Sender: envSender, Curve: curve, Plaintext: sealed}); err != nil {
			return err
		}
		if _, err := m.loadUser(ctx, envSender); err != nil {
			return err
		}
		uu := m.users[envSender]
		uu.Tracked, uu.Outdated = true, true
		uu.Gen++
		return putJSON(ch, KindUser, envSender, uu)
	}
	return m.handleOlmEvent(ctx, ch, res, u, d, &pt)
}

// handleOlmEvent is the only path by which key-bearing events are processed:
// they have passed Olm decryption and the binding checks (A4 rule 3).
func (m *Machine) handleOlmEvent(ctx context.Context, ch *Changes, res *Result, u *userRecord, d *deviceRecord, pt *olmPlaintext) error {
	switch pt.Type {
	case "m.room_key":
		return m.roomKeyReceive(ctx, ch, res, u, d, pt.Content)
	case "m.forwarded_room_key":
		return m.forwardReceive(ctx, ch, res, u, d, pt.Content)
	case "m.dummy":
		return nil
	case "m.room_key_bundle":
		return m.bundleReceive(ctx, ch, res, u, d, pt)
	case "m.secret.request":
		return m.dedupSecretRequest(ctx, ch, res, u.UserID, DecryptedToDevice{
			Encrypted: true, Type: pt.Type, Sender: u.UserID, SenderDevice: d.DeviceID, SenderCurve: d.Curve25519,
			SenderEd25519: d.Ed25519, Content: pt.Content,
		})
	default:
		res.ToDevice = append(res.ToDevice, DecryptedToDevice{
			Encrypted: true, Type: pt.Type, Sender: u.UserID, SenderDevice: d.DeviceID, SenderCurve: d.Curve25519,
			SenderEd25519: d.Ed25519, Content: pt.Content,
		})
	}
	return nil
}

func (m *Machine) retryPendingOlm(ctx context.Context, res *Result) error {
	recs, err := m.store.List(ctx, KindPendingOlm, "")
	if err != nil {
		return err
	}
	for _, rec := range recs {
		var p pendingOlm
		ch := &Changes{}
		ch.Delete(KindPendingOlm, rec.Key)
		if json.Unmarshal(rec.Value, &p) != nil {
			if err := m.store.Save(ctx, ch); err != nil {
				return err
			}
			continue
		}
		raw, err := m.openRecord(KindPendingOlm, rec.Key, p.Plaintext)
		if err != nil {
			res.reject(RejectMalformed, p.Sender, "", err)
			if err := m.store.Save(ctx, ch); err != nil {
				return err
			}
			continue
		}
		var pt olmPlaintext
		_ = json.Unmarshal(raw, &pt)
		u, d, err := m.checkOlmBinding(ctx, p.Sender, p.Curve, &pt)
		switch {
		case err != nil:
			res.reject(RejectOlmBindingMismatch, p.Sender, "", err)
		case d == nil:
			if uu, _ := m.loadUser(ctx, p.Sender); uu != nil && uu.Outdated {
				continue // still waiting for a query
			}
			res.reject(RejectUnknownSenderDevice, p.Sender, "", errors.New("e2ee: olm message from a device its owner's device list does not contain"))
		default:
			if err := m.handleOlmEvent(ctx, ch, res, u, d, &pt); err != nil {
				m.abort(ctx)
				return err
			}
		}
		if err := m.store.Save(ctx, ch); err != nil {
			m.abort(ctx)
			return err
		}
	}
	return nil
}

// maybeUnwedge starts a new Olm session with a device whose messages we can
// no longer decrypt, at most once per UnwedgeInterval, and sends m.dummy
// over it (spec "Recovering from undecryptable messages").
func (m *Machine) maybeUnwedge(ctx context.Context, curve string) error {
	u, d, err := m.deviceByCurve(ctx, curve)
	if err != nil || d == nil || !d.usable() {
		return err
	}
	now := m.now()
	if d.LastUnwedge != 0 && now.Sub(time.UnixMilli(d.LastUnwedge)) < UnwedgeInterval {
		return nil
	}
	d.LastUnwedge = now.UnixMilli()
	ch := &Changes{}
	if err := putJSON(ch, KindUser, u.UserID, u); err != nil {
		return err
	}
	if err := m.holdOlm(ctx, ch, olmTarget{u.UserID, d}, "m.dummy", map[string]any{}); err != nil {
		return err
	}
	if err := m.queueClaim(ctx, ch, []olmTarget{{u.UserID, d}}, true); err != nil {
		return err
	}
	if err := m.putAccount(ch); err != nil {
		return err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return err
	}
	return nil
}

type claimMeta struct {
	Devices []string `json:"devices"` // "user|device"
	Force   bool     `json:"force"`
}

// queueClaim queues one /keys/claim for targets. With force, a new session
// is created even if one exists (unwedging).
func (m *Machine) queueClaim(_ context.Context, ch *Changes, targets []olmTarget, force bool) error {
	body := map[string]map[string]string{}
	meta := claimMeta{Force: force}
	for _, t := range targets {
		if body[t.user] == nil {
			body[t.user] = map[string]string{}
		}
		body[t.user][t.d.DeviceID] = algSignedCurve
		meta.Devices = append(meta.Devices, t.user+"|"+t.d.DeviceID)
	}
	_, err := m.queueRequest(ch, RequestKeysClaim, "", map[string]any{"one_time_keys": body, "timeout": 10000}, meta)
	return err
}

func (m *Machine) claimDone(ctx context.Context, ch *Changes, res *Result, req *Request, resp []byte) error {
	var meta claimMeta
	if err := json.Unmarshal(req.Meta, &meta); err != nil {
		return fmt.Errorf("e2ee: keys/claim bookkeeping: %w", err)
	}
	var cr struct {
		OTKs map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
	}
	if err := json.Unmarshal(resp, &cr); err != nil {
		return fmt.Errorf("e2ee: keys/claim response: %w: %v", ErrBadResponse, err)
	}
	type job struct {
		t       olmTarget
		entries map[string]json.RawMessage
		badOTK  bool
		otk     keys.Curve25519PublicKey
		rnd     [64]byte
		s       *olm.Session
		err     error
	}
	var jobs []*job
	now := m.now()
	for _, ud := range meta.Devices {
		user, dev, _ := strings.Cut(ud, "|")
		u, err := m.loadUser(ctx, user)
		if err != nil {
			return err
		}
		d := u.Devices[dev]
		if !d.usable() {
			continue
		}
		if !meta.Force {
			if ss, err := m.loadOlm(ctx, d.Curve25519); err != nil {
				return err
			} else if len(ss) > 0 {
				continue
			}
		}
		j := &job{t: olmTarget{user, d}, entries: cr.OTKs[user][dev]}
		if _, err := io.ReadFull(m.rand, j.rnd[:]); err != nil {
			return err
		}
		jobs = append(jobs, j)
	}
	// Signature checks (one Ed25519 verification) and session creation
	// (five X25519 operations) in parallel, on every core.
	parallel(len(jobs), func(i int) {
		j := jobs[i]
		if j.otk, j.err = m.checkOTK(j.t.user, j.t.d, j.entries); j.err != nil {
			j.badOTK = true
			return
		}
		cv, _ := keys.ParseCurve25519PublicKey(j.t.d.Curve25519)
		j.s, j.err = m.acct.NewOutboundSession(bytes.NewReader(j.rnd[:]), cv, j.otk)
	})
	ms := now.UnixMilli()
	for _, j := range jobs {
		if j.err != nil {
			m.noOlm[j.t.d.Curve25519] = now
			switch {
			case errors.Is(j.err, errNoOTK):
			case errors.Is(j.err, keys.ErrNonContributory):
				res.reject(RejectNonContributory, j.t.user, j.t.d.DeviceID, fmt.Errorf("e2ee: claimed one-time key is a low-order point: %w", j.err))
			default:
				res.reject(RejectOTKBadSignature, j.t.user, j.t.d.DeviceID, fmt.Errorf("e2ee: olm session with claimed key: %w", j.err))
			}
			continue
		}
		delete(m.noOlm, j.t.d.Curve25519)
		// A new session is the newest: LastUsed one past any other.
		ss, err := m.loadOlm(ctx, j.t.d.Curve25519)
		if err != nil {
			return err
		}
		lu := ms
		for _, o := range ss {
			lu = max(lu, o.LastUsed+1)
		}
		s := &olmSession{SessionID: j.s.ID(), Curve: j.t.d.Curve25519, Created: ms, LastUsed: lu, s: j.s}
		m.olmSess[s.Curve] = append(ss, s)
		if err := m.putOlm(ch, s); err != nil {
			return err
		}
		if err := m.boundOlm(ch, s.Curve); err != nil {
			return err
		}
	}
	// Messages that waited for a session with these devices (m.dummy,
	// forwarded keys, SendEncryptedToDevice), persisted with the claim.
	held, err := m.store.List(ctx, KindPendingSend, "")
	if err != nil || len(held) == 0 {
		return err
	}
	heldFor := map[string]bool{}
	for _, h := range held {
		curve, _, _ := strings.Cut(h.Key, "|")
		heldFor[curve] = true
	}
	for _, ud := range meta.Devices {
		user, dev, _ := strings.Cut(ud, "|")
		u, err := m.loadUser(ctx, user)
		if err != nil {
			return err
		}
		if d := u.Devices[dev]; d.usable() && heldFor[d.Curve25519] {
			if err := m.flushHeld(ctx, ch, olmTarget{user, d}); err != nil {
				return err
			}
		}
	}
	return nil
}

// MaxHeldPerDevice bounds the Olm sends waiting for a new session with one
// device; older ones are dropped first.
const MaxHeldPerDevice = 32

// holdOlm persists (sealed, in ch) an Olm send waiting for a session with
// t, so that a restart before the claim is acknowledged does not lose it.
func (m *Machine) holdOlm(ctx context.Context, ch *Changes, t olmTarget, evType string, content any) error {
	c, err := json.Marshal(content)
	if err != nil {
		return fmt.Errorf("e2ee: encode held send: %w", err)
	}
	prefix := t.d.Curve25519 + "|"
	old, err := m.store.List(ctx, KindPendingSend, prefix)
	if err != nil {
		return err
	}
	for i := 0; i+MaxHeldPerDevice-1 < len(old); i++ {
		ch.Delete(KindPendingSend, old[i].Key)
	}
	b, err := json.Marshal(olmSend{User: t.user, Device: t.d.DeviceID, EvType: evType, Content: c})
	if err != nil {
		return err
	}
	key := prefix + m.newRequestID()
	sealed, err := m.sealRecord(KindPendingSend, key, b)
	if err != nil {
		return err
	}
	ch.Put(KindPendingSend, key, sealed)
	return nil
}

// flushHeld encrypts and queues every send held for t, if t has a session.
func (m *Machine) flushHeld(ctx context.Context, ch *Changes, t olmTarget) error {
	ss, err := m.loadOlm(ctx, t.d.Curve25519)
	if err != nil || len(ss) == 0 {
		return err
	}
	recs, err := m.store.List(ctx, KindPendingSend, t.d.Curve25519+"|")
	if err != nil {
		return err
	}
	for _, rec := range recs {
		ch.Delete(KindPendingSend, rec.Key)
		var s olmSend
		b, err := m.openRecord(KindPendingSend, rec.Key, rec.Value)
		if err != nil || json.Unmarshal(b, &s) != nil || s.User != t.user || s.Device != t.d.DeviceID {
			m.log.Warn("e2ee: dropped a held olm send that does not open or match its device")
			continue
		}
		out, err := m.olmEncryptMany(ctx, ch, []olmTarget{t}, s.EvType, [][]byte{s.Content})
		if err != nil {
			return err
		}
		if _, err := m.queueRequest(ch, RequestSendToDevice, "m.room.encrypted", toDeviceBody([]olmTarget{t}, out), nil); err != nil {
			return err
		}
	}
	return nil
}

var errNoOTK = errors.New("e2ee: the server returned no one-time key for the device")

// checkOTK verifies a claimed one-time key: signed by the device's Ed25519
// key from its validated device object (B9 rule 1).
func (m *Machine) checkOTK(user string, d *deviceRecord, entries map[string]json.RawMessage) (keys.Curve25519PublicKey, error) {
	ids := make([]string, 0, len(entries))
	for k := range entries {
		if strings.HasPrefix(k, algSignedCurve+":") {
			ids = append(ids, k)
		}
	}
	if len(ids) == 0 {
		return keys.Curve25519PublicKey{}, errNoOTK
	}
	slices.Sort(ids)
	raw := entries[ids[0]]
	ed, err := keys.ParseEd25519PublicKey(d.Ed25519)
	if err != nil {
		return keys.Curve25519PublicKey{}, err
	}
	if err := signing.Verify(raw, user, "ed25519:"+d.DeviceID, ed); err != nil {
		return keys.Curve25519PublicKey{}, fmt.Errorf("e2ee: one-time key of %s/%s not signed by the device: %w", user, d.DeviceID, err)
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(raw, &k); err != nil {
		return keys.Curve25519PublicKey{}, fmt.Errorf("e2ee: one-time key: %w", err)
	}
	return keys.ParseCurve25519PublicKey(k.Key)
}

// SendEncryptedToDevice queues an Olm-encrypted to-device event for one
// known device (verification messages, m.secret.send for issue 6). If no
// Olm session exists yet, a one-time key is claimed first and the event is
// sent once the claim is acknowledged (held, sealed, in the store until
// then, saved with the claim request).
// The device must be in the user's validated device list and not
// distrusted; whether it is trusted enough for the content is the
// caller's decision.
func (m *Machine) SendEncryptedToDevice(ctx context.Context, user, device, evType string, content json.RawMessage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, err := m.loadUser(ctx, user)
	if err != nil {
		return err
	}
	d := u.Devices[device]
	if !d.usable() {
		return fmt.Errorf("e2ee: send to %s/%s: device unknown or distrusted", user, device)
	}
	t := olmTarget{user, d}
	ch := &Changes{}
	ss, err := m.loadOlm(ctx, d.Curve25519)
	if err != nil {
		return err
	}
	if len(ss) == 0 {
		if err := m.holdOlm(ctx, ch, t, evType, content); err != nil {
			m.abort(ctx)
			return err
		}
		if err := m.queueClaim(ctx, ch, []olmTarget{t}, false); err != nil {
			m.abort(ctx)
			return err
		}
	} else {
		out, err := m.olmEncryptMany(ctx, ch, []olmTarget{t}, evType, [][]byte{content})
		if err != nil {
			m.abort(ctx)
			return err
		}
		if _, err := m.queueRequest(ch, RequestSendToDevice, "m.room.encrypted", toDeviceBody([]olmTarget{t}, out), nil); err != nil {
			m.abort(ctx)
			return err
		}
	}
	if err := m.putAccount(ch); err != nil {
		m.abort(ctx)
		return err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return fmt.Errorf("e2ee: send to device: %w", err)
	}
	return nil
}

// MaxSeenRequestsPerDevice bounds the processed request IDs remembered per
// requesting device (B3 rule 5); the oldest are forgotten first.
const MaxSeenRequestsPerDevice = 64

// seenRequest records that (sender, device) made request reqID of evType in
// ch and reports whether it had been processed before (B3 rule 5: every
// to-device handler is idempotent). The record keys are hashes, so hostile
// IDs cannot collide with other devices' prefixes.
func (m *Machine) seenRequest(ctx context.Context, ch *Changes, evType, sender, device, reqID string) (bool, error) {
	hd := sha256.Sum256([]byte(sender + "\x00" + device))
	hr := sha256.Sum256([]byte(evType + "\x00" + reqID))
	prefix := hex.EncodeToString(hd[:16]) + "|"
	key := prefix + hex.EncodeToString(hr[:16])
	if _, err := m.store.Get(ctx, KindToDeviceSeen, key); err == nil {
		return true, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	recs, err := m.store.List(ctx, KindToDeviceSeen, prefix)
	if err != nil {
		return false, err
	}
	if len(recs) >= MaxSeenRequestsPerDevice {
		type aged struct {
			key string
			ts  int64
		}
		all := make([]aged, 0, len(recs))
		for _, r := range recs {
			var v struct {
				TS int64 `json:"ts"`
			}
			_ = json.Unmarshal(r.Value, &v)
			all = append(all, aged{r.Key, v.TS})
		}
		slices.SortFunc(all, func(a, b aged) int {
			if a.ts != b.ts {
				return int(max(-1, min(1, a.ts-b.ts)))
			}
			return strings.Compare(a.key, b.key)
		})
		for _, a := range all[:len(all)-MaxSeenRequestsPerDevice+1] {
			ch.Delete(KindToDeviceSeen, a.key)
		}
	}
	return false, putJSON(ch, KindToDeviceSeen, key, map[string]int64{"ts": m.now().UnixMilli()})
}

// secretRequestReceive de-duplicates a cleartext m.secret.request and passes
// it on (the recovery package decides whether to answer).
func (m *Machine) secretRequestReceive(ctx context.Context, res *Result, sender string, td DecryptedToDevice) error {
	ch := &Changes{}
	if err := m.dedupSecretRequest(ctx, ch, res, sender, td); err != nil {
		m.abort(ctx)
		return err
	}
	if ch.IsEmpty() {
		return nil
	}
	if err := m.putAccount(ch); err != nil {
		return err
	}
	if err := m.store.Save(ctx, ch); err != nil {
		m.abort(ctx)
		return fmt.Errorf("e2ee: secret request: %w", err)
	}
	return nil
}

// dedupSecretRequest passes td (an m.secret.request) to the application
// unless it repeats a request of the same device already passed on. Only
// requests from our own user's cross-signed devices are remembered (the
// only ones that can be answered), so other senders cannot fill the table.
func (m *Machine) dedupSecretRequest(ctx context.Context, ch *Changes, res *Result, sender string, td DecryptedToDevice) error {
	var c struct {
		Action    string `json:"action"`
		Requester string `json:"requesting_device_id"`
		RequestID string `json:"request_id"`
	}
	if json.Unmarshal(td.Content, &c) == nil && c.Action == "request" && c.RequestID != "" && sender == m.user.String() {
		u, err := m.loadUser(ctx, sender)
		if err != nil {
			return err
		}
		// Only requests that can be answered (our cross-signed devices) are
		// remembered: a device that asks before it is cross-signed may ask
		// again with the same request_id once it is.
		if t := m.trustOf(u, u.Devices[c.Requester]); u.Devices[c.Requester] != nil && (t == TrustVerifiedIdentity || t == TrustCrossSignedPinned) {
			dup, err := m.seenRequest(ctx, ch, td.Type, sender, c.Requester, c.RequestID)
			if err != nil {
				return err
			}
			if dup {
				res.reject(RejectDuplicateRequest, sender, c.Requester, errors.New("e2ee: m.secret.request with a request_id already processed: dropped"))
				return nil
			}
		}
	}
	res.ToDevice = append(res.ToDevice, td)
	return nil
}
