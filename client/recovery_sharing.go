package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"myelin/e2ee"
	"myelin/e2ee/recovery"
	"myelin/id"
	"myelin/keys"
	"myelin/signing"
)

// secretSharing is the state of secret sharing between our own devices.
type secretSharing struct {
	mu   sync.Mutex
	reqs *recovery.SecretRequests
	pub  *recovery.Published
	got  map[string]*recovery.AcceptedSecret // name -> accepted
	wake chan struct{}                       // closed and replaced on each acceptance
}

// ownDevices lists our own devices from /keys/query (self-signed device
// objects only) with the e2ee machine's verdict on each: only devices it
// holds as cross-signed by our trusted identity count.
func (c *Client) ownDevices(ctx context.Context) ([]recovery.Device, error) {
	body, _ := json.Marshal(map[string]any{"device_keys": map[string][]string{c.UserID(): {}}})
	resp, err := c.http.KeysQuery(ctx, body)
	if err != nil {
		return nil, err
	}
	var q struct {
		Devices map[string]map[string]json.RawMessage `json:"device_keys"`
	}
	if err := json.Unmarshal(resp, &q); err != nil {
		return nil, fmt.Errorf("%w: keys/query", ErrBadResponse)
	}
	st, err := c.m.Identity(ctx, c.UserID())
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	var out []recovery.Device
	for devID, raw := range q.Devices[c.UserID()] {
		var d struct {
			UserID     string            `json:"user_id"`
			DeviceID   string            `json:"device_id"`
			Keys       map[string]string `json:"keys"`
			Dehydrated bool              `json:"dehydrated"`
		}
		if json.Unmarshal(raw, &d) != nil || d.UserID != c.UserID() || d.DeviceID != devID {
			continue
		}
		ed, err1 := keys.ParseEd25519PublicKey(d.Keys["ed25519:"+devID])
		cu, err2 := keys.ParseCurve25519PublicKey(d.Keys["curve25519:"+devID])
		did, err3 := id.ParseDeviceID(devID)
		if err1 != nil || err2 != nil || err3 != nil || signing.Verify(raw, c.UserID(), "ed25519:"+devID, ed) != nil {
			continue
		}
		cross := false
		if st != nil {
			tr, ok := st.Devices[devID]
			cross = ok && (tr == e2ee.TrustVerifiedIdentity || tr == e2ee.TrustCrossSignedPinned)
		}
		out = append(out, recovery.Device{DeviceID: did, Ed25519: ed, Curve25519: cu, CrossSigned: cross, Dehydrated: d.Dehydrated})
	}
	return out, nil
}

// EnableSecretSharing lets this device answer m.secret.request from our own
// cross-signed devices, over Olm and to them only, for the secrets it holds
// (the cross-signing keys and the backup key).
func (c *Client) EnableSecretSharing() {
	c.sharingState()
}

func (c *Client) sharingState() *secretSharing {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sharing == nil {
		uid, _ := id.ParseUserID(c.http.UserID())
		dev, _ := id.ParseDeviceID(c.http.DeviceID())
		c.sharing = &secretSharing{reqs: recovery.NewSecretRequests(uid, dev), got: map[string]*recovery.AcceptedSecret{}, wake: make(chan struct{})}
		c.toDeviceHook = c.dispatchToDevice
	}
	return c.sharing
}

// dispatchToDevice hands the to-device events the machine did not consume
// to verification and secret sharing.
func (c *Client) dispatchToDevice(ctx context.Context, td e2ee.DecryptedToDevice) {
	c.mu.Lock()
	v, s := c.verifier, c.sharing
	c.mu.Unlock()
	switch {
	case v != nil && strings.HasPrefix(td.Type, "m.key.verification."):
		v.onToDevice(ctx, td)
	case s != nil && td.Type == recovery.SecretRequestType:
		c.answerSecretRequest(ctx, td)
	case s != nil && td.Type == recovery.SecretSendType:
		c.acceptSecret(ctx, s, td)
	}
}

func (c *Client) heldSecret(ctx context.Context) func(string) ([]byte, bool) {
	return func(name string) ([]byte, bool) {
		switch name {
		case recovery.SecretMaster, recovery.SecretSelfSigning, recovery.SecretUserSigning:
			sk, err := c.CrossSigningKeys(ctx)
			if err != nil {
				return nil, false
			}
			defer sk.Wipe()
			k := map[string]*keys.Ed25519SecretKey{recovery.SecretMaster: sk.Master, recovery.SecretSelfSigning: sk.SelfSigning, recovery.SecretUserSigning: sk.UserSigning}[name]
			return []byte(keys.EncodeBase64(k.Seed())), true
		case recovery.SecretBackup:
			bk, err := c.backupKey(ctx)
			if err != nil {
				return nil, false
			}
			defer bk.Wipe()
			return bk.Secret(), true
		}
		return nil, false
	}
}

func (c *Client) answerSecretRequest(ctx context.Context, td e2ee.DecryptedToDevice) {
	devs, err := c.ownDevices(ctx)
	if err != nil {
		c.log.Warn("client: secret request: devices", "err", err)
		return
	}
	uid, _ := id.ParseUserID(c.UserID())
	dev, _ := id.ParseDeviceID(c.DeviceID())
	from := recovery.Sender{UserID: td.Sender, DeviceID: td.SenderDevice, Olm: td.Encrypted}
	if td.Encrypted {
		from.Curve25519, _ = keys.ParseCurve25519PublicKey(td.SenderCurve)
	}
	ans, err := recovery.AnswerRequest(uid, dev, from, td.Content, devs, c.heldSecret(ctx))
	if err != nil {
		c.log.Info("client: secret request not answered", "err", err)
		return
	}
	if ans == nil {
		return
	}
	if err := c.m.SendEncryptedToDevice(ctx, c.UserID(), ans.DeviceID.String(), recovery.SecretSendType, ans.Content); err != nil {
		c.log.Warn("client: secret send", "err", err)
	}
}

func (c *Client) acceptSecret(ctx context.Context, s *secretSharing, td e2ee.DecryptedToDevice) {
	from := recovery.Sender{UserID: td.Sender, DeviceID: td.SenderDevice, Olm: td.Encrypted}
	if td.Encrypted {
		from.Curve25519, _ = keys.ParseCurve25519PublicKey(td.SenderCurve)
	}
	s.mu.Lock()
	acc, err := s.reqs.Accept(from, td.Content, s.pub)
	if err == nil {
		s.got[acc.Name] = acc
		close(s.wake)
		s.wake = make(chan struct{})
	}
	s.mu.Unlock()
	if err != nil {
		c.log.Warn("client: secret refused", "err", err)
		return
	}
	for _, cn := range acc.Cancellations {
		if err := c.m.SendEncryptedToDevice(ctx, c.UserID(), cn.DeviceID.String(), recovery.SecretRequestType, cn.Content); err != nil {
			c.log.Warn("client: secret request cancellation", "err", err)
		}
	}
}

// ErrOwnIdentityNotTrusted reports a secret request from a device that does
// not yet trust our own identity (recover it or verify with another device
// first): there would be nothing to check the secrets against.
var ErrOwnIdentityNotTrusted = errors.New("client: our own identity is not trusted on this device")

// RequestSecrets asks our other cross-signed devices (over Olm) for the
// cross-signing private keys and the backup key, and waits until each has
// arrived from a device we asked and matched its published public key (the
// backup key: the key of a backup version our master key signed). It
// needs this device to trust our identity (after SAS with one of our
// devices) and the sync loop running. The keys are then kept like
// recovered ones.
func (c *Client) RequestSecrets(ctx context.Context) error {
	uid, err := id.ParseUserID(c.UserID())
	if err != nil {
		return err
	}
	// After a verification the machine re-queries our keys before it
	// calls our identity verified: give it a few syncs.
	var st *e2ee.IdentityStatus
	for i := 0; ; i++ {
		if st, err = c.m.Identity(ctx, c.UserID()); err != nil {
			return fmt.Errorf("client: %w", err)
		}
		if st != nil && st.Verified && st.MasterKey != "" {
			break
		}
		if i == 3 {
			return ErrOwnIdentityNotTrusted
		}
		if err := c.WaitSync(ctx); err != nil {
			return err
		}
	}
	master, err := keys.ParseEd25519PublicKey(st.MasterKey)
	if err != nil {
		return ErrOwnIdentityNotTrusted
	}
	pub, err := c.publishedOwnKeys(ctx, uid)
	if err != nil {
		return err
	}
	if pub.MasterKey != master {
		return fmt.Errorf("client: published master key is not the trusted one: %w", ErrOwnIdentityNotTrusted)
	}
	names := []string{recovery.SecretMaster, recovery.SecretSelfSigning, recovery.SecretUserSigning}
	if tv, err := c.trustVersion(ctx, master, nil); err == nil {
		pub.BackupKey = tv.PublicKey
		names = append(names, recovery.SecretBackup)
	} else if !IsErrCode(err, "M_NOT_FOUND") {
		return err
	}
	devs, err := c.ownDevices(ctx)
	if err != nil {
		return err
	}
	s := c.sharingState()
	s.mu.Lock()
	s.pub = pub
	s.mu.Unlock()
	for _, name := range names {
		s.mu.Lock()
		out, err := s.reqs.Request(c.rand(), name, devs)
		s.mu.Unlock()
		if err != nil {
			return err
		}
		for _, d := range out.Targets {
			if err := c.m.SendEncryptedToDevice(ctx, c.UserID(), d.String(), recovery.SecretRequestType, out.Content); err != nil {
				return fmt.Errorf("client: %w", err)
			}
		}
	}
	if err := c.flushOutgoing(ctx); err != nil {
		return err
	}
	// Wait for all answers.
	for {
		s.mu.Lock()
		n, wake := 0, s.wake
		for _, name := range names {
			if s.got[name] != nil {
				n++
			}
		}
		s.mu.Unlock()
		if n == len(names) {
			break
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	got := s.got
	s.got = map[string]*recovery.AcceptedSecret{}
	s.mu.Unlock()
	seeds := make([]byte, 0, 96)
	for _, name := range names[:3] {
		seeds = append(seeds, got[name].SigningKey.Seed()...)
	}
	err = c.m.SaveSecret(ctx, secretCrossSigning, seeds)
	clear(seeds)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if a := got[recovery.SecretBackup]; a != nil {
		err := c.m.SaveSecret(ctx, secretBackupKey, a.BackupKey.Bytes())
		a.BackupKey.Wipe()
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
	}
	for _, a := range got {
		if a.SigningKey != nil {
			a.SigningKey.Wipe()
		}
	}
	return nil
}
