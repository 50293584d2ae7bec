package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"

	"myelin/api"
	"myelin/crypto/backup"
	"myelin/crypto/megolm"
	"myelin/crypto/ssss"
	"myelin/e2ee"
	"myelin/e2ee/recovery"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// Secrets kept sealed in the e2ee store by the recovery flows.
const (
	secretBackupKey = "myelin.backup_key"
	secretSSSSPin   = "myelin.ssss_pin"
	// secretRestored lists the session IDs imported from the backup: they
	// are never uploaded again by this device, which would put its MAC on
	// entries it could not authenticate (threat model B7).
	secretRestored = "myelin.backup_restored"
)

// ErrNoBackupKey reports a backup operation on a device that holds no backup
// key (neither bootstrapped nor recovered).
var ErrNoBackupKey = errors.New("client: no backup key on this device")

// AlertBackupVersionChanged is the code of the alert delivered (as an Event
// with Alert set) when the server's current backup version is not one this
// device trusts: a version the server swapped in, or a new one nobody
// vouched for (threat model B7 rule 1). Nothing is uploaded to it.
const AlertBackupVersionChanged e2ee.AlertCode = "backup_version_changed"

// backupState remembers, under Client.mu, what was uploaded to which
// version and which refused version was reported.
type backupState struct {
	version  string
	uploaded map[string]uint32 // session ID -> first known index uploaded
	reported string            // refused version already alerted
}

// RecoveryResult is what RecoverWithKey did.
type RecoveryResult struct {
	// BackupVersion is the trusted backup version restored from ("" if the
	// account has none).
	BackupVersion string
	// Restored is the number of sessions imported from the backup;
	// Authenticated how many of them carried a valid MSC4048 MAC; Refused
	// the entries that were skipped (each with its reason).
	Restored      int
	Authenticated int
	Refused       []*recovery.EntryError
}

// GetAccountData returns the content of one of the user's account-data
// events (a *MatrixError with M_NOT_FOUND if it does not exist).
func (h *HTTP) GetAccountData(ctx context.Context, evType string) (json.RawMessage, error) {
	return h.raw(ctx, http.MethodGet, v3("user", h.UserID(), "account_data", evType), nil, true)
}

// PutAccountData sets one of the user's account-data events.
func (h *HTTP) PutAccountData(ctx context.Context, evType string, content json.RawMessage) error {
	_, err := h.raw(ctx, http.MethodPut, v3("user", h.UserID(), "account_data", evType), content, true)
	return err
}

func (c *Client) rand() io.Reader {
	if c.opts.Rand != nil {
		return c.opts.Rand
	}
	return rand.Reader
}

// BootstrapRecovery sets up recovery on a device that holds the account's
// cross-signing keys (the registering device): a new secret-storage key (its
// recovery key is returned, for the user to write down), the three
// cross-signing private keys and a new backup key stored in secret storage
// (account data), and a new key-backup version whose auth_data is signed by
// the master key. The room keys this device holds are then uploaded
// (BackupRoomKeys); call BackupRoomKeys again to back up later sessions.
func (c *Client) BootstrapRecovery(ctx context.Context) (recoveryKey string, err error) {
	sk, err := c.CrossSigningKeys(ctx)
	if err != nil {
		return "", fmt.Errorf("client: bootstrap recovery: %w", err)
	}
	defer sk.Wipe()
	rnd := c.rand()
	key, err := ssss.GenerateKey(rnd)
	if err != nil {
		return "", err
	}
	defer key.Wipe()
	keyID, err := ssss.GenerateKeyID(rnd)
	if err != nil {
		return "", err
	}
	desc, err := ssss.NewKeyDescription(rnd, key, "", nil)
	if err != nil {
		return "", err
	}
	descJSON, err := json.Marshal(desc)
	if err != nil {
		return "", err
	}
	dk, _ := json.Marshal(map[string]string{"key": keyID})
	ad := recovery.AccountData{recovery.KeyTypePrefix + keyID: descJSON, recovery.DefaultKeyType: dk}
	locked, err := recovery.OpenSecretStorage(ad, nil)
	if err != nil {
		return "", err
	}
	u, err := locked.Unlock(key)
	if err != nil {
		return "", err
	}
	defer u.Wipe()

	bk, err := backup.GenerateDecryptionKey(rnd)
	if err != nil {
		return "", err
	}
	defer bk.Wipe()
	secrets := []struct {
		name string
		val  []byte
	}{
		{recovery.SecretMaster, []byte(keys.EncodeBase64(sk.Master.Seed()))},
		{recovery.SecretSelfSigning, []byte(keys.EncodeBase64(sk.SelfSigning.Seed()))},
		{recovery.SecretUserSigning, []byte(keys.EncodeBase64(sk.UserSigning.Seed()))},
		{recovery.SecretBackup, bk.Secret()},
	}
	for _, s := range secrets {
		ct, err := u.EncryptSecret(rnd, s.name, s.val)
		clear(s.val)
		if err != nil {
			return "", err
		}
		ad[s.name] = ct
	}
	// Keep the backup key and the pin before anything reaches the server.
	if err := c.m.SaveSecret(ctx, secretBackupKey, bk.Bytes()); err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	if err := c.savePin(ctx, u.Pin()); err != nil {
		return "", err
	}
	// Secrets and the key description first, the default key last.
	order := []string{recovery.SecretMaster, recovery.SecretSelfSigning, recovery.SecretUserSigning, recovery.SecretBackup,
		recovery.KeyTypePrefix + keyID, recovery.DefaultKeyType}
	for _, t := range order {
		if err := c.http.PutAccountData(ctx, t, ad[t]); err != nil {
			return "", err
		}
	}
	authData, err := signing.SignFields(map[string]any{"public_key": bk.PublicKey().String()},
		c.UserID(), "ed25519:"+sk.Master.PublicKey().String(), sk.Master)
	if err != nil {
		return "", fmt.Errorf("client: sign backup auth_data: %w", err)
	}
	// And by this device, so that our other devices can trust the version
	// through it too (issue 6: signed by our master key and device).
	if authData, err = c.m.SignBackupAuthData(authData); err != nil {
		return "", fmt.Errorf("client: %w", err)
	}
	body, _ := json.Marshal(map[string]any{"algorithm": backup.Algorithm, "auth_data": json.RawMessage(authData)})
	if _, err := c.http.CreateBackupVersion(ctx, body); err != nil {
		return "", err
	}
	if _, err := c.BackupRoomKeys(ctx); err != nil {
		return "", err
	}
	return key.RecoveryKey(), nil
}

func (c *Client) savePin(ctx context.Context, p *recovery.Pin) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := c.m.SaveSecret(ctx, secretSSSSPin, b); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

func (c *Client) loadPin(ctx context.Context) (*recovery.Pin, error) {
	b, err := c.m.LoadSecret(ctx, secretSSSSPin)
	if errors.Is(err, e2ee.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p recovery.Pin
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("client: stored secret storage pin: %w", err)
	}
	return &p, nil
}

func (c *Client) backupKey(ctx context.Context) (*backup.DecryptionKey, error) {
	b, err := c.m.LoadSecret(ctx, secretBackupKey)
	if errors.Is(err, e2ee.ErrNotFound) {
		return nil, ErrNoBackupKey
	}
	if err != nil {
		return nil, err
	}
	defer clear(b)
	return backup.NewDecryptionKey(b)
}

// TrustedBackupVersion fetches the server's current backup version and
// returns it only if its auth_data is signed by our master key (which this
// device holds) and belongs to the backup key we hold. A version the server
// swapped in is refused with *recovery.UntrustedBackupVersionError
// (errors.Is recovery.ErrUntrustedBackupVersion).
func (c *Client) TrustedBackupVersion(ctx context.Context) (*recovery.TrustedVersion, error) {
	sk, err := c.CrossSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: backup: %w", err)
	}
	master := sk.Master.PublicKey()
	sk.Wipe()
	bk, err := c.backupKey(ctx)
	if err != nil {
		return nil, err
	}
	defer bk.Wipe()
	tv, err := c.trustVersion(ctx, master, bk)
	var ue *recovery.UntrustedBackupVersionError
	if errors.As(err, &ue) {
		c.mu.Lock()
		fresh := c.backup.reported != ue.Version
		c.backup.reported = ue.Version
		c.mu.Unlock()
		if fresh {
			c.deliver(ctx, Event{Alert: &e2ee.Alert{Code: AlertBackupVersionChanged, UserID: c.UserID(),
				Message: "The key backup on the server is not one of ours (reason: " + string(ue.Reason) + "); nothing is uploaded to it."}})
		}
	}
	return tv, err
}

func (c *Client) trustVersion(ctx context.Context, master keys.Ed25519PublicKey, bk *backup.DecryptionKey) (*recovery.TrustedVersion, error) {
	uid, err := id.ParseUserID(c.UserID())
	if err != nil {
		return nil, err
	}
	resp, err := c.http.BackupVersion(ctx)
	if err != nil {
		return nil, err
	}
	tv, err := recovery.TrustBackupVersion(recovery.VersionInput{UserID: uid, Response: resp, MasterKey: master, Key: bk})
	if err != nil {
		c.log.Warn("client: backup version refused", "err", err)
		return nil, err
	}
	return tv, nil
}

// BackupRoomKeys uploads the room keys this device holds and has not yet
// uploaded to the current backup version, after checking that version
// (TrustedBackupVersion; a refused version is also reported as an alert
// Event with AlertBackupVersionChanged); each entry carries the MSC4048 MAC
// so that restoring devices can tell it from entries the server could have
// written. Sessions restored from the backup or forwarded are not uploaded.
// It returns the number of sessions uploaded.
func (c *Client) BackupRoomKeys(ctx context.Context) (int, error) {
	tv, err := c.TrustedBackupVersion(ctx)
	if err != nil {
		return 0, err
	}
	bk, err := c.backupKey(ctx)
	if err != nil {
		return 0, err
	}
	defer bk.Wipe()
	uid, err := id.ParseUserID(c.UserID())
	if err != nil {
		return 0, err
	}
	exp, err := c.m.ExportRoomKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	defer func() {
		for i := range exp {
			exp[i].SessionKey = ""
		}
	}()
	restored, err := c.restoredIDs(ctx)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.backup.version != tv.Version || c.backup.uploaded == nil {
		c.backup.version, c.backup.uploaded = tv.Version, map[string]uint32{}
	}
	done := maps.Clone(c.backup.uploaded)
	c.mu.Unlock()
	var entries []recovery.UploadEntry
	for _, k := range exp {
		if _, ok := restored[k.SessionID]; ok || len(k.ForwardingChain) > 0 {
			// Restored from the backup or forwarded: not ours to vouch for.
			continue
		}
		sender, err := keys.ParseCurve25519PublicKey(k.SenderKey)
		if err != nil {
			continue
		}
		sess, err := megolm.ParseExportedSessionKey(k.SessionKey)
		if err != nil {
			continue
		}
		rid, err := id.ParseRoomID(k.RoomID)
		if err != nil {
			continue
		}
		se := &recovery.SessionExport{RoomID: rid, SessionID: k.SessionID, SenderKey: sender,
			SenderClaimedKeys: k.SenderClaimedKeys, SessionKey: k.SessionKey,
			ForwardingChain: k.ForwardingChain, FirstKnownIndex: sess.Index()}
		if idx, ok := done[k.SessionID]; ok && idx <= sess.Index() {
			continue
		}
		d, err := tv.EncryptSession(c.rand(), uid, bk.MACKey(), se)
		if err != nil {
			c.log.Warn("client: backup: session not backed up", "session", k.SessionID, "err", err)
			continue
		}
		entries = append(entries, recovery.UploadEntry{RoomID: rid, SessionID: k.SessionID, Data: d})
	}
	if len(entries) == 0 {
		return 0, nil
	}
	body, err := recovery.UploadBody(entries)
	if err != nil {
		return 0, err
	}
	if _, err := c.http.PutRoomKeys(ctx, tv.Version, body); err != nil {
		return 0, err
	}
	c.mu.Lock()
	if c.backup.version == tv.Version {
		for _, e := range entries {
			c.backup.uploaded[e.SessionID] = e.Data.FirstMessageIndex
		}
	}
	c.mu.Unlock()
	return len(entries), nil
}

// AutoBackup uploads new room keys to the backup after every sync
// (BackupRoomKeys) until ctx ends. It returns ctx's error, or an error
// wrapping recovery.ErrUntrustedBackupVersion when the server's version is
// not trusted (also delivered as an alert), or ErrNoBackupKey.
func (c *Client) AutoBackup(ctx context.Context) error {
	for {
		if _, err := c.BackupRoomKeys(ctx); err != nil {
			if errors.Is(err, recovery.ErrUntrustedBackupVersion) || errors.Is(err, ErrNoBackupKey) || ctx.Err() != nil {
				return err
			}
			c.log.Warn("client: backup upload", "err", err)
		}
		if err := c.WaitSync(ctx); err != nil {
			return err
		}
	}
}

// RecoverWithKey sets up a new device from secret storage: it unlocks the
// default secret-storage key with the recovery key the user typed (checked
// against the pinned key description, if this device pinned one), recovers
// the cross-signing keys, each checked against the published public keys
// (whose chain is checked) before any is used, cross-signs this device with
// the self-signing key and trusts the identity, then trusts the backup
// version only if our master key signed it, recovers the backup key
// (checked against that version's public key) and restores the room keys
// from the backup. If the backup version is refused (an error wrapping
// recovery.ErrUntrustedBackupVersion), the cross-signing part is done and
// nothing is restored. Sessions are imported as the e2ee machine imports
// backups (provenance "forwarded or backup"); RecoveryResult counts the
// entries that carried a valid MSC4048 MAC.
func (c *Client) RecoverWithKey(ctx context.Context, recoveryKey string) (*RecoveryResult, error) {
	uid, err := id.ParseUserID(c.UserID())
	if err != nil {
		return nil, err
	}
	// Restored sessions are bound to their sender's device, which the
	// machine must know: let a first sync (and its keys/query) complete.
	c.mu.Lock()
	first := c.since == ""
	c.mu.Unlock()
	if first {
		if err := c.WaitSync(ctx); err != nil {
			return nil, err
		}
	}
	ad := recovery.AccountData{}
	dk, err := c.http.GetAccountData(ctx, recovery.DefaultKeyType)
	if err != nil {
		return nil, fmt.Errorf("client: recover: %w", err)
	}
	ad[recovery.DefaultKeyType] = dk
	var def struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(dk, &def); err != nil || def.Key == "" {
		return nil, fmt.Errorf("client: recover: %w", recovery.ErrNoDefaultKey)
	}
	for _, t := range []string{recovery.KeyTypePrefix + def.Key, recovery.SecretMaster, recovery.SecretSelfSigning,
		recovery.SecretUserSigning, recovery.SecretBackup} {
		b, err := c.http.GetAccountData(ctx, t)
		if IsErrCode(err, "M_NOT_FOUND") {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("client: recover: %w", err)
		}
		ad[t] = b
	}
	pin, err := c.loadPin(ctx)
	if err != nil {
		return nil, err
	}
	locked, err := recovery.OpenSecretStorage(ad, pin)
	if err != nil {
		return nil, err
	}
	u, err := locked.UnlockWithRecoveryKey(recoveryKey)
	if err != nil {
		return nil, err
	}
	defer u.Wipe()

	pub, err := c.publishedOwnKeys(ctx, uid)
	if err != nil {
		return nil, err
	}
	rec, err := recovery.Recover(u, ad, pub)
	if err != nil {
		return nil, err
	}
	defer rec.Wipe()
	sk := rec.SigningKeys
	if sk.UserSigning == nil {
		return nil, fmt.Errorf("client: recover: no user-signing key published")
	}
	if err := c.savePin(ctx, u.Pin()); err != nil {
		return nil, err
	}
	seeds := append(append(append([]byte(nil), sk.Master.Seed()...), sk.SelfSigning.Seed()...), sk.UserSigning.Seed()...)
	err = c.m.SaveSecret(ctx, secretCrossSigning, seeds)
	clear(seeds)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if err := c.adoptCrossSigning(ctx, sk); err != nil {
		return nil, err
	}

	out := &RecoveryResult{}
	if _, ok := ad[recovery.SecretBackup]; !ok {
		return out, nil
	}
	// The master key is now proven (its private key came out of secret
	// storage under the user's recovery key and matched); it alone vouches
	// for the backup version.
	tv, err := c.trustVersion(ctx, pub.MasterKey, nil)
	if err != nil {
		return nil, err
	}
	pub.BackupKey = tv.PublicKey
	rec2, err := recovery.Recover(u, ad, pub)
	if err != nil {
		return nil, err
	}
	defer rec2.Wipe()
	if err := c.m.SaveSecret(ctx, secretBackupKey, rec2.BackupKey.Bytes()); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	out.BackupVersion = tv.Version
	body, err := c.http.RoomKeys(ctx, tv.Version)
	if err != nil {
		return nil, err
	}
	restored, err := recovery.Restore(uid, rec2.BackupKey, body)
	if err != nil {
		return nil, err
	}
	out.Refused = restored.Refused
	// Authenticated entries (MSC4048 MAC under our backup key) were written
	// by our own devices and keep the sender's provenance; the others are
	// imported as "from backup, no authenticity".
	var authed, unauthed []e2ee.ExportedRoomKey
	for _, s := range restored.Sessions {
		k := e2ee.ExportedRoomKey{Algorithm: recovery.MegolmAlgorithm, RoomID: s.RoomID.String(),
			SenderKey: s.SenderKey.String(), SessionID: s.SessionID, SessionKey: s.SessionKey.String(),
			SenderClaimedKeys: map[string]string{"ed25519": s.SenderClaimedEd25519.String()},
			ForwardingChain:   s.ForwardingChain}
		if s.Authenticated() {
			out.Authenticated++
			authed = append(authed, k)
		} else {
			unauthed = append(unauthed, k)
		}
	}
	if err := c.addRestoredIDs(ctx, restored.Sessions); err != nil {
		return nil, err
	}
	for _, batch := range []struct {
		keys []e2ee.ExportedRoomKey
		imp  func(context.Context, []e2ee.ExportedRoomKey) (int, *e2ee.Result, error)
	}{{authed, c.m.ImportAuthenticatedBackupKeys}, {unauthed, c.m.ImportRoomKeys}} {
		if len(batch.keys) == 0 {
			continue
		}
		n, res, err := batch.imp(ctx, batch.keys)
		if err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
		c.deliverResult(ctx, res)
		out.Restored += n
	}
	c.retryPending(ctx)
	return out, nil
}

func (c *Client) restoredIDs(ctx context.Context) (map[string]struct{}, error) {
	b, err := c.m.LoadSecret(ctx, secretRestored)
	if errors.Is(err, e2ee.ErrNotFound) {
		return map[string]struct{}{}, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("client: stored restored sessions: %w", err)
	}
	m := make(map[string]struct{}, len(ids))
	for _, s := range ids {
		m[s] = struct{}{}
	}
	return m, nil
}

func (c *Client) addRestoredIDs(ctx context.Context, sessions []recovery.RestoredSession) error {
	m, err := c.restoredIDs(ctx)
	if err != nil {
		return err
	}
	for _, s := range sessions {
		m[s.SessionID] = struct{}{}
	}
	ids := make([]string, 0, len(m))
	for s := range m {
		ids = append(ids, s)
	}
	b, _ := json.Marshal(ids)
	if err := c.m.SaveSecret(ctx, secretRestored, b); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// publishedOwnKeys reads our cross-signing public keys from /keys/query,
// with the chain checked (recovered secrets are checked against them).
func (c *Client) publishedOwnKeys(ctx context.Context, uid id.UserID) (*recovery.Published, error) {
	body, _ := json.Marshal(map[string]any{"device_keys": map[string][]string{c.UserID(): {}}})
	resp, err := c.http.KeysQuery(ctx, body)
	if err != nil {
		return nil, err
	}
	var q struct {
		Master map[string]json.RawMessage `json:"master_keys"`
		Self   map[string]json.RawMessage `json:"self_signing_keys"`
		User   map[string]json.RawMessage `json:"user_signing_keys"`
	}
	if err := json.Unmarshal(resp, &q); err != nil {
		return nil, fmt.Errorf("%w: keys/query", ErrBadResponse)
	}
	return recovery.PublishedFromKeysQuery(uid, q.Master[c.UserID()], q.Self[c.UserID()], q.User[c.UserID()], nil)
}

// DecryptHistory reads up to limit of a room's latest events with
// /messages and decrypts them (oldest first), for history this device
// received no live key for (after RecoverWithKey restored the backup).
func (c *Client) DecryptHistory(ctx context.Context, roomID string, limit int) ([]Event, error) {
	r, err := c.http.Messages(ctx, roomID, "", "b", limit)
	if err != nil {
		return nil, err
	}
	out := make([]Event, 0, len(r.Chunk))
	for i := len(r.Chunk) - 1; i >= 0; i-- {
		ev := r.Chunk[i]
		ev.RoomID = roomID
		e := Event{RoomID: roomID, Raw: ev, Encrypted: ev.Type == "m.room.encrypted"}
		if !e.Encrypted {
			e.Event = ev
			out = append(out, e)
			continue
		}
		d, err := c.m.Decrypt(ctx, roomID, e2ee.Event(ev))
		if err != nil {
			e.Event, e.Err = ev, err
		} else {
			e.Event, e.Provenance = api.ClientEvent(d.Event), d.Provenance
			e.Event.RoomID = roomID
			if e.Event.EventID == "" {
				e.Event.EventID = ev.EventID
			}
		}
		out = append(out, e)
	}
	return out, nil
}
