package recovery

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"myelin/crypto/backup"
	"myelin/crypto/ssss"
	"myelin/id"
	"myelin/keys"
)

// Secret-sharing event types.
const (
	// SecretRequestType is the to-device m.secret.request event.
	SecretRequestType = "m.secret.request"
	// SecretSendType is the to-device m.secret.send event (Olm only).
	SecretSendType = "m.secret.send"
)

// MaxPendingRequests bounds the outstanding requests SecretRequests
// remembers; the oldest is forgotten first.
const MaxPendingRequests = 32

// MaxSharingContentSize bounds the m.secret.request / m.secret.send content
// this package parses.
const MaxSharingContentSize = 16 << 10

// shareable lists the secrets we request and answer.
var shareable = map[string]bool{
	SecretMaster: true, SecretSelfSigning: true, SecretUserSigning: true, SecretBackup: true,
}

// Sender is the sender of a to-device event as the e2ee machine
// authenticated it. For m.secret.send, Olm must be true and Curve25519 is the
// Olm identity key the event was decrypted with (the machine's
// DecryptedToDevice.SenderCurve); DeviceID is the device that key belongs
// to in our validated device list.
type Sender struct {
	UserID     string
	DeviceID   string
	Curve25519 keys.Curve25519PublicKey
	Olm        bool
}

// SecretRequests is the requesting side of secret sharing: it remembers the
// requests we sent, to whom (device and Curve25519 key), and accepts only
// the first valid reply to each. It is not safe for concurrent use, and it is
// not persisted: a reply after a restart is unsolicited and refused.
type SecretRequests struct {
	user    id.UserID
	device  id.DeviceID
	pending map[string]*pendingRequest
	order   []string
}

type pendingRequest struct {
	name     string
	targets  map[id.DeviceID]keys.Curve25519PublicKey
	answered bool
}

// NewSecretRequests returns the request state of our device.
func NewSecretRequests(user id.UserID, device id.DeviceID) *SecretRequests {
	return &SecretRequests{user: user, device: device, pending: map[string]*pendingRequest{}}
}

// OutgoingSecretRequest is a request to send: Content (m.secret.request) to
// each of Targets (preferably over Olm with the machine's
// SendEncryptedToDevice).
type OutgoingSecretRequest struct {
	RequestID string
	Name      string
	Content   json.RawMessage
	Targets   []id.DeviceID
}

// Cancellation is an m.secret.request with action request_cancellation, to
// send to a device we asked and no longer need an answer from.
type Cancellation struct {
	DeviceID id.DeviceID
	Content  json.RawMessage
}

type secretRequest struct {
	Name               string `json:"name,omitempty"`
	Action             string `json:"action"`
	RequestingDeviceID string `json:"requesting_device_id"`
	RequestID          string `json:"request_id"`
}

// Request prepares a request for secret name to our own cross-signed,
// non-dehydrated devices other than this one (A5 rule 1, B16); it fails
// with ErrNoTrustedDevice if there are none.
func (r *SecretRequests) Request(rand io.Reader, name string, devices []Device) (*OutgoingSecretRequest, error) {
	if !shareable[name] {
		return nil, &SharingError{Reason: SharingUnknownSecret}
	}
	targets := map[id.DeviceID]keys.Curve25519PublicKey{}
	var ids []id.DeviceID
	for i := range devices {
		d := &devices[i]
		if !d.trusted() || d.DeviceID == r.device || d.Curve25519.IsZero() {
			continue
		}
		if _, dup := targets[d.DeviceID]; dup {
			continue
		}
		targets[d.DeviceID] = d.Curve25519
		ids = append(ids, d.DeviceID)
	}
	if len(ids) == 0 {
		return nil, ErrNoTrustedDevice
	}
	rid, err := ssss.GenerateKeyID(rand)
	if err != nil {
		return nil, fmt.Errorf("recovery: secret request: %w", err)
	}
	content, err := json.Marshal(secretRequest{Name: name, Action: "request", RequestingDeviceID: r.device.String(), RequestID: rid})
	if err != nil {
		return nil, fmt.Errorf("recovery: secret request: %w", err)
	}
	if len(r.order) >= MaxPendingRequests {
		delete(r.pending, r.order[0])
		r.order = r.order[1:]
	}
	r.pending[rid] = &pendingRequest{name: name, targets: targets}
	r.order = append(r.order, rid)
	return &OutgoingSecretRequest{RequestID: rid, Name: name, Content: content, Targets: ids}, nil
}

// AcceptedSecret is a secret received by sharing and checked against its
// published public key. Exactly one of SigningKey and BackupKey is set.
type AcceptedSecret struct {
	Name       string
	RequestID  string
	SigningKey *keys.Ed25519SecretKey
	BackupKey  *backup.DecryptionKey
	// Cancellations go to the other devices we asked.
	Cancellations []Cancellation
}

// Accept checks an incoming m.secret.send (threat model A5 rules 1-3, B8
// rule 4): it must have arrived over Olm, from our own user, answer an
// outstanding request of ours that no valid reply answered yet, come from a
// device we asked, under the Curve25519 key that device had when we asked
// (checked by key, not by device ID), and carry a secret that matches the
// published public key for its name (the backup key: the public key of an
// independently trusted backup version). A refused reply leaves the request
// outstanding, so a forged reply cannot block the genuine one.
func (r *SecretRequests) Accept(from Sender, content []byte, pub *Published) (*AcceptedSecret, error) {
	if len(content) > MaxSharingContentSize {
		return nil, &SharingError{Reason: SharingMalformed, Cause: ErrTooLarge}
	}
	var c struct {
		RequestID string `json:"request_id"`
		Secret    string `json:"secret"`
	}
	if err := json.Unmarshal(content, &c); err != nil || c.RequestID == "" || c.Secret == "" {
		return nil, &SharingError{Reason: SharingMalformed, RequestID: clip(c.RequestID), Cause: ErrMalformed}
	}
	refuse := func(reason SharingReason, cause error) (*AcceptedSecret, error) {
		return nil, &SharingError{Reason: reason, RequestID: clip(c.RequestID), Cause: cause}
	}
	if !from.Olm {
		return refuse(SharingNotOlm, nil)
	}
	if from.UserID != r.user.String() {
		return refuse(SharingOtherUser, nil)
	}
	p, ok := r.pending[c.RequestID]
	if !ok {
		return refuse(SharingUnsolicited, nil)
	}
	if p.answered {
		return refuse(SharingAlreadyAnswered, nil)
	}
	dev, err := id.ParseDeviceID(from.DeviceID)
	if err != nil {
		return refuse(SharingWrongDevice, nil)
	}
	want, ok := p.targets[dev]
	if !ok || from.Curve25519.IsZero() || from.Curve25519 != want {
		return refuse(SharingWrongDevice, nil)
	}
	if pub == nil {
		return refuse(SharingNoTrustedKey, ErrNoTrustedPublicKey)
	}
	a := &AcceptedSecret{Name: p.name, RequestID: c.RequestID}
	secret := []byte(c.Secret)
	defer clear(secret)
	switch p.name {
	case SecretBackup:
		a.BackupKey, err = checkBackupSecret(secret, pub.BackupKey)
	case SecretMaster:
		a.SigningKey, err = checkSigningSecret(secret, pub.MasterKey)
	case SecretSelfSigning:
		a.SigningKey, err = checkSigningSecret(secret, pub.SelfSigningKey)
	case SecretUserSigning:
		a.SigningKey, err = checkSigningSecret(secret, pub.UserSigningKey)
	default:
		return refuse(SharingUnknownSecret, nil)
	}
	switch {
	case errors.Is(err, ErrNoTrustedPublicKey):
		return refuse(SharingNoTrustedKey, err)
	case err != nil:
		return refuse(SharingSecretMismatch, err)
	}
	p.answered = true
	a.Cancellations = r.cancellations(c.RequestID, dev)
	return a, nil
}

// Cancel forgets an outstanding request and returns the cancellations to
// send to the devices we asked.
func (r *SecretRequests) Cancel(requestID string) []Cancellation {
	p, ok := r.pending[requestID]
	if !ok {
		return nil
	}
	out := r.cancellations(requestID, id.DeviceID{})
	p.answered = true
	return out
}

func (r *SecretRequests) cancellations(requestID string, except id.DeviceID) []Cancellation {
	p := r.pending[requestID]
	content, _ := json.Marshal(secretRequest{Action: "request_cancellation", RequestingDeviceID: r.device.String(), RequestID: requestID})
	var out []Cancellation
	for _, d := range sortedDeviceIDs(p.targets) {
		if d != except {
			out = append(out, Cancellation{DeviceID: d, Content: content})
		}
	}
	return out
}

func sortedDeviceIDs(m map[id.DeviceID]keys.Curve25519PublicKey) []id.DeviceID {
	ss := map[string]id.DeviceID{}
	for d := range m {
		ss[d.String()] = d
	}
	var out []id.DeviceID
	for _, k := range sortedKeys(ss) {
		out = append(out, ss[k])
	}
	return out
}

// Answer is an m.secret.send to send over Olm (the machine's
// SendEncryptedToDevice) to DeviceID of our user, and to nobody else.
type Answer struct {
	DeviceID id.DeviceID
	Content  json.RawMessage
}

// AnswerRequest decides whether to answer an incoming m.secret.request
// (threat model A5 rule 1, B8 rule 4, B16): the sender must be our own user,
// the requesting device one of our own cross-signed, non-dehydrated devices
// other than this one, the action "request", the name one we share, and we
// must hold the secret (held returns it). The answer is to be encrypted
// with Olm to that device's keys, so only it can read the secret even
// though the request itself is unauthenticated. held's result is copied.
func AnswerRequest(ourUser id.UserID, ourDevice id.DeviceID, from Sender, content []byte, devices []Device, held func(name string) ([]byte, bool)) (*Answer, error) {
	if len(content) > MaxSharingContentSize {
		return nil, &SharingError{Reason: SharingMalformed, Cause: ErrTooLarge}
	}
	var c secretRequest
	if err := json.Unmarshal(content, &c); err != nil || c.RequestID == "" || c.RequestingDeviceID == "" {
		return nil, &SharingError{Reason: SharingMalformed, RequestID: clip(c.RequestID), Cause: ErrMalformed}
	}
	refuse := func(reason SharingReason) (*Answer, error) {
		return nil, &SharingError{Reason: reason, RequestID: clip(c.RequestID)}
	}
	if from.UserID != ourUser.String() {
		return refuse(SharingOtherUser)
	}
	if c.Action != "request" {
		return refuse(SharingNotARequest)
	}
	if !shareable[c.Name] {
		return refuse(SharingUnknownSecret)
	}
	dev, err := id.ParseDeviceID(c.RequestingDeviceID)
	if err != nil {
		return refuse(SharingUntrustedDevice)
	}
	if dev == ourDevice {
		return refuse(SharingOwnDevice)
	}
	var target *Device
	for i := range devices {
		if devices[i].DeviceID == dev {
			target = &devices[i]
			break
		}
	}
	switch {
	case target == nil:
		return refuse(SharingUntrustedDevice)
	case target.Dehydrated:
		return refuse(SharingDehydratedDevice)
	case !target.trusted():
		return refuse(SharingUntrustedDevice)
	}
	secret, ok := held(c.Name)
	if !ok || len(secret) == 0 {
		return refuse(SharingNotHeld)
	}
	out, err := json.Marshal(map[string]string{"request_id": c.RequestID, "secret": string(secret)})
	if err != nil {
		return nil, fmt.Errorf("recovery: answer secret request: %w", err)
	}
	return &Answer{DeviceID: dev, Content: out}, nil
}
