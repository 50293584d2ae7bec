package sas

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"myelin/id"
	"myelin/keys"
)

// Method is the verification method name.
const Method = "m.sas.v1"

// KeyAgreementProtocol is the only key agreement this package implements.
const KeyAgreementProtocol = "curve25519-hkdf-sha256"

// HashAlgorithm is the commitment hash.
const HashAlgorithm = "sha256"

// SAS method names for m.key.verification.accept.
const (
	SASEmoji   = "emoji"
	SASDecimal = "decimal"
)

// MaxMACEntries bounds the key IDs in a received m.key.verification.mac. A
// flow verifies one device key and at most one master key.
const MaxMACEntries = 8

var (
	// ErrMismatchedCommitment reports a commitment that does not match the
	// accepter's key and the start content (cancel m.mismatched_commitment).
	ErrMismatchedCommitment = errors.New("sas: commitment mismatch")
	// ErrKeyMismatch reports a MAC that does not verify (cancel
	// m.key_mismatch).
	ErrKeyMismatch = errors.New("sas: key MAC mismatch")
	// ErrUnexpectedKeyID reports a MAC for a key ID that was not pinned
	// when the flow started (cancel m.key_mismatch).
	ErrUnexpectedKeyID = errors.New("sas: MAC for a key that is not part of this verification")
	// ErrDeviceIDCollision reports a device whose ID equals the base64 of a
	// cross-signing key of the same user (CVE-2022-39250); refuse to verify.
	ErrDeviceIDCollision = errors.New("sas: device ID equals a cross-signing public key")
	// ErrNoKeys reports a MAC message that names no keys.
	ErrNoKeys = errors.New("sas: no keys to verify")
	// ErrUnknownMethod reports a method name this package does not
	// implement.
	ErrUnknownMethod = errors.New("sas: unknown method")
	// ErrInvalidFlow reports a flow description with empty fields.
	ErrInvalidFlow = errors.New("sas: invalid flow description")
)

// Ephemeral is the flow's ephemeral X25519 key before the other side's key
// is known.
type Ephemeral struct {
	sk  *keys.Curve25519SecretKey
	pub keys.Curve25519PublicKey
}

// NewEphemeral reads exactly 32 bytes from rand as the private key (the
// same consumption as libolm's olm_create_sas).
func NewEphemeral(rand io.Reader) (*Ephemeral, error) {
	sk, err := keys.GenerateCurve25519SecretKey(rand)
	if err != nil {
		return nil, fmt.Errorf("sas: %w", err)
	}
	return &Ephemeral{sk: sk, pub: sk.PublicKey()}, nil
}

// PublicKey is the key to send in m.key.verification.key.
// It stays available after [Ephemeral.Establish].
func (e *Ephemeral) PublicKey() keys.Curve25519PublicKey { return e.pub }

// Establish does the key agreement with the other side's ephemeral key. It
// refuses a non-contributory agreement (keys.ErrNonContributory) and our own
// key sent back to us. On success the private key is wiped: an Ephemeral
// is used once.
func (e *Ephemeral) Establish(their keys.Curve25519PublicKey) (*Established, error) {
	if e.sk == nil {
		return nil, errors.New("sas: ephemeral key already used")
	}
	// Public keys are not secret: == is fine.
	if their == e.sk.PublicKey() {
		return nil, fmt.Errorf("sas: their key is our own: %w", ErrKeyMismatch)
	}
	shared, err := e.sk.SharedSecret(their)
	if err != nil {
		return nil, fmt.Errorf("sas: %w", err)
	}
	s := &Established{shared: shared, our: e.sk.PublicKey(), their: their}
	e.sk.Wipe()
	e.sk = nil
	return s, nil
}

// Established is a SAS whose shared secret is known.
type Established struct {
	_          [0]func()
	shared     [32]byte
	our, their keys.Curve25519PublicKey
}

// OurPublicKey is our ephemeral public key.
func (s *Established) OurPublicKey() keys.Curve25519PublicKey { return s.our }

// TheirPublicKey is the other side's ephemeral public key.
func (s *Established) TheirPublicKey() keys.Curve25519PublicKey { return s.their }

// Wipe clears the shared secret.
func (s *Established) Wipe() { clear(s.shared[:]) }

// String is redacted.
func (s *Established) String() string { return "sas.Established(REDACTED)" }

// GoString is redacted.
func (s *Established) GoString() string { return s.String() }

// Format prints the redacted form for every verb.
func (s *Established) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// GenerateBytes is HKDF-SHA-256 (no salt) of the shared secret with the given
// info, n bytes: libolm's olm_sas_generate_bytes. Flows use
// [Established.ShortAuthString]; this is for tests and interop.
func (s *Established) GenerateBytes(info string, n int) []byte {
	out, err := hkdf.Key(sha256.New, s.shared[:], nil, info, n)
	if err != nil {
		panic("sas: internal error: " + err.Error())
	}
	return out
}

// Party is one side of a verification: a user and one of their devices.
type Party struct {
	User   id.UserID
	Device id.DeviceID
}

// Flow describes a verification as both sides see it.
type Flow struct {
	// ID is the to-device transaction_id, or the event ID of the in-room
	// m.key.verification.request.
	ID    string
	Our   Party
	Their Party
	// WeStarted is true when we sent m.key.verification.start.
	WeStarted bool
}

func (f *Flow) check() error {
	if f.ID == "" || f.Our.User.IsZero() || f.Our.Device.IsZero() || f.Their.User.IsZero() || f.Their.Device.IsZero() {
		return ErrInvalidFlow
	}
	return nil
}

// sasInfo is the HKDF info for curve25519-hkdf-sha256: the start sender's
// user, device and ephemeral key, then the accepter's, then the flow ID,
// all separated by "|".
func (s *Established) sasInfo(f *Flow) string {
	start, accept := f.Our, f.Their
	startKey, acceptKey := s.our, s.their
	if !f.WeStarted {
		start, accept = accept, start
		startKey, acceptKey = acceptKey, startKey
	}
	return "MATRIX_KEY_VERIFICATION_SAS|" +
		start.User.String() + "|" + start.Device.String() + "|" + startKey.String() + "|" +
		accept.User.String() + "|" + accept.Device.String() + "|" + acceptKey.String() + "|" +
		f.ID
}

// ShortAuthString derives the six SAS bytes for the flow.
func (s *Established) ShortAuthString(f Flow) (ShortAuthString, error) {
	if err := f.check(); err != nil {
		return ShortAuthString{}, err
	}
	var out ShortAuthString
	b := s.GenerateBytes(s.sasInfo(&f), len(out.b))
	copy(out.b[:], b)
	return out, nil
}

// ShortAuthString is the six bytes users compare, shown as emoji or numbers.
type ShortAuthString struct{ b [6]byte }

// NewShortAuthString wraps six bytes (for tests and interop).
func NewShortAuthString(b [6]byte) ShortAuthString { return ShortAuthString{b} }

// Bytes returns the six bytes.
func (s ShortAuthString) Bytes() [6]byte { return s.b }

// Emoji returns the seven emoji: the first 42 bits in groups of 6, each an
// index into the spec's table.
func (s ShortAuthString) Emoji() [7]Emoji {
	var n uint64
	for _, b := range s.b {
		n = n<<8 | uint64(b)
	}
	var out [7]Emoji
	for i := range out {
		out[i] = emojiTable[(n>>(42-6*uint(i)))&63]
	}
	return out
}

// Decimal returns the three numbers (1000..9191): the first 39 bits in
// groups of 13, plus 1000.
func (s ShortAuthString) Decimal() [3]int {
	b := s.b
	return [3]int{
		(int(b[0])<<5 | int(b[1])>>3) + 1000,
		((int(b[1])&0x7)<<10 | int(b[2])<<2 | int(b[3])>>6) + 1000,
		((int(b[3])&0x3f)<<7 | int(b[4])>>1) + 1000,
	}
}

// Emoji is one entry of the spec's SAS emoji table.
type Emoji struct {
	Number      int
	Emoji       string
	Description string
	// Unicode lists the code points, e.g. "U+1F436".
	Unicode string
}

// EmojiTable returns the spec's 64-entry table.
func EmojiTable() [64]Emoji { return emojiTable }

// Commitment is the accepter's commitment: unpadded base64 of
// SHA-256(base64 of the accepter's ephemeral key || canonical JSON of the
// m.key.verification.start content). canonicalStart must be the canonical
// JSON of the content exactly as sent, including transaction_id or
// m.relates_to.
func Commitment(accepterKey keys.Curve25519PublicKey, canonicalStart []byte) string {
	h := sha256.New()
	h.Write([]byte(accepterKey.String()))
	h.Write(canonicalStart)
	return keys.EncodeBase64(h.Sum(nil))
}

// VerifyCommitment checks the commitment received in
// m.key.verification.accept once the accepter's key has arrived.
func VerifyCommitment(commitment string, accepterKey keys.Curve25519PublicKey, canonicalStart []byte) error {
	want := Commitment(accepterKey, canonicalStart)
	if subtle.ConstantTimeCompare([]byte(want), []byte(commitment)) != 1 {
		return ErrMismatchedCommitment
	}
	return nil
}

// MACMethod is a message_authentication_code method.
type MACMethod int

const (
	// MACv2 is hkdf-hmac-sha256.v2, the method to use.
	MACv2 MACMethod = iota + 1
	// MACInsecureLegacyHKDF is hkdf-hmac-sha256: the same MAC as [MACv2]
	// written in libolm's broken base64. Only for peers that offer nothing
	// better; the spec forbids it when both support v2.
	MACInsecureLegacyHKDF
	// MACInsecureLegacyLongKDF is hmac-sha256 (libolm's
	// olm_sas_calculate_mac_long_kdf): a 256-byte HKDF output as the HMAC
	// key, broken base64. Obsolete; only for very old peers.
	MACInsecureLegacyLongKDF
)

// String returns the method's protocol name.
func (m MACMethod) String() string {
	switch m {
	case MACv2:
		return "hkdf-hmac-sha256.v2"
	case MACInsecureLegacyHKDF:
		return "hkdf-hmac-sha256"
	case MACInsecureLegacyLongKDF:
		return "hmac-sha256"
	}
	return fmt.Sprintf("MACMethod(%d)", int(m))
}

// ParseMACMethod maps a protocol name to a method. It accepts the unstable
// alias org.matrix.msc3783.hkdf-hmac-sha256 for [MACv2].
func ParseMACMethod(s string) (MACMethod, error) {
	switch s {
	case "hkdf-hmac-sha256.v2", "org.matrix.msc3783.hkdf-hmac-sha256":
		return MACv2, nil
	case "hkdf-hmac-sha256":
		return MACInsecureLegacyHKDF, nil
	case "hmac-sha256":
		return MACInsecureLegacyLongKDF, nil
	}
	return 0, fmt.Errorf("sas: MAC method %q: %w", s, ErrUnknownMethod)
}

// ChooseMACMethod picks the best method both sides support, from the names
// the start message offered: v2 whenever offered, legacy only when it is
// all there is.
func ChooseMACMethod(offered []string) (MACMethod, error) {
	best := MACMethod(0)
	for _, s := range offered {
		m, err := ParseMACMethod(s)
		if err != nil {
			continue
		}
		if best == 0 || m < best {
			best = m
		}
	}
	if best == 0 {
		return 0, ErrUnknownMethod
	}
	return best, nil
}

// CalculateMAC is the MAC of input under info with the given method, as
// sent on the wire (libolm's olm_sas_calculate_mac_fixed_base64,
// olm_sas_calculate_mac and olm_sas_calculate_mac_long_kdf). Flows use
// [Established.MACs]; this is for tests and interop.
func (s *Established) CalculateMAC(m MACMethod, input, info string) (string, error) {
	var keyLen int
	switch m {
	case MACv2, MACInsecureLegacyHKDF:
		keyLen = 32
	case MACInsecureLegacyLongKDF:
		keyLen = 256
	default:
		return "", ErrUnknownMethod
	}
	key := s.GenerateBytes(info, keyLen)
	h := hmac.New(sha256.New, key)
	clear(key)
	h.Write([]byte(input))
	sum := h.Sum(nil)
	if m == MACv2 {
		return keys.EncodeBase64(sum), nil
	}
	return brokenBase64(sum), nil
}

// brokenBase64 reproduces libolm's in-place base64 of the 32-byte MAC: the
// encoder runs front to back over a buffer whose earlier groups it has
// already overwritten with text.
func brokenBase64(mac []byte) string {
	const n = 32
	buf := make([]byte, base64.RawStdEncoding.EncodedLen(n))
	copy(buf, mac)
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for g := 0; g < n/3; g++ {
		v := uint(buf[3*g])<<16 | uint(buf[3*g+1])<<8 | uint(buf[3*g+2])
		buf[4*g+3] = enc[v&63]
		buf[4*g+2] = enc[(v>>6)&63]
		buf[4*g+1] = enc[(v>>12)&63]
		buf[4*g] = enc[(v>>18)&63]
	}
	// The last two input bytes, as they now are, become three characters.
	v := (uint(buf[30])<<8 | uint(buf[31])) << 2
	buf[42] = enc[v&63]
	buf[41] = enc[(v>>6)&63]
	buf[40] = enc[(v>>12)&63]
	return string(buf)
}

// KeyID names a key in an m.key.verification.mac message. It is either a
// device key ID (ed25519:<device ID>) or a cross-signing key ID
// (ed25519:<base64 public key>); which one is fixed when it is built, by
// [DeviceKeyID] or [CrossSigningKeyID], and there is deliberately no way to
// parse one from a string.
type KeyID struct {
	crossSigning bool
	device       id.DeviceID
	key          keys.Ed25519PublicKey
}

// DeviceKeyID is the ID of a device's Ed25519 key.
func DeviceKeyID(device id.DeviceID) KeyID { return KeyID{device: device} }

// CrossSigningKeyID is the ID of a cross-signing (master) key, which is
// named by its own public key.
func CrossSigningKeyID(key keys.Ed25519PublicKey) KeyID {
	return KeyID{crossSigning: true, key: key}
}

// String returns the wire form, ed25519:<name>.
func (k KeyID) String() string {
	if k.crossSigning {
		return "ed25519:" + k.key.String()
	}
	return "ed25519:" + k.device.String()
}

// IsCrossSigning reports whether k names a cross-signing key.
func (k KeyID) IsCrossSigning() bool { return k.crossSigning }

// DeviceID returns the device of a device key ID.
func (k KeyID) DeviceID() (id.DeviceID, bool) { return k.device, !k.crossSigning }

// CrossSigningKey returns the public key named by a cross-signing key ID.
func (k KeyID) CrossSigningKey() (keys.Ed25519PublicKey, bool) { return k.key, k.crossSigning }

// Key is a key offered for, or proven by, verification: its typed ID and
// its public key.
type Key struct {
	id  KeyID
	key keys.Ed25519PublicKey
}

// DeviceKey is a device's Ed25519 key under its device ID.
func DeviceKey(device id.DeviceID, key keys.Ed25519PublicKey) Key {
	return Key{id: DeviceKeyID(device), key: key}
}

// MasterKey is a user's master cross-signing key (its ID is derived from the
// key, so the two cannot disagree).
func MasterKey(key keys.Ed25519PublicKey) Key {
	return Key{id: CrossSigningKeyID(key), key: key}
}

// ID returns the key's ID.
func (k Key) ID() KeyID { return k.id }

// PublicKey returns the public key.
func (k Key) PublicKey() keys.Ed25519PublicKey { return k.key }

// TheirKeys is what we believe about the other side when the flow starts.
type TheirKeys struct {
	// Device and DeviceKey are the other device and its Ed25519 key.
	Device    id.DeviceID
	DeviceKey keys.Ed25519PublicKey
	// MasterKey is the other user's master key as we currently believe it;
	// the zero value if they have none (device-only verification, which the
	// spec deprecates between different users).
	MasterKey keys.Ed25519PublicKey
	// OtherCrossSigningKeys are the user's other cross-signing public keys
	// (self-signing, and user-signing when known), for the collision check.
	OtherCrossSigningKeys []keys.Ed25519PublicKey
	// OtherDevices are the user's other device IDs, for the collision check.
	OtherDevices []id.DeviceID
}

// PinnedKeys are the keys the other side may prove in this flow, fixed at
// its start.
type PinnedKeys struct {
	device Key
	master *Key
}

// Pin fixes the keys to verify. It refuses ([ErrDeviceIDCollision]) if the
// device's ID, or any of OtherDevices, equals the base64 of the master key
// or of any other cross-signing key of the user.
func Pin(t TheirKeys) (*PinnedKeys, error) {
	if t.Device.IsZero() || t.DeviceKey.IsZero() {
		return nil, fmt.Errorf("sas: pin: missing device: %w", ErrInvalidFlow)
	}
	cs := slices.Clone(t.OtherCrossSigningKeys)
	if !t.MasterKey.IsZero() {
		cs = append(cs, t.MasterKey)
	}
	if err := checkCollisions(append([]id.DeviceID{t.Device}, t.OtherDevices...), cs); err != nil {
		return nil, err
	}
	p := &PinnedKeys{device: DeviceKey(t.Device, t.DeviceKey)}
	if !t.MasterKey.IsZero() {
		m := MasterKey(t.MasterKey)
		p.master = &m
	}
	return p, nil
}

// checkCollisions refuses any device ID equal to the base64 of a
// cross-signing key (CVE-2022-39250).
func checkCollisions(devices []id.DeviceID, crossSigning []keys.Ed25519PublicKey) error {
	for _, d := range devices {
		for _, k := range crossSigning {
			if d.String() == k.String() {
				return ErrDeviceIDCollision
			}
		}
	}
	return nil
}

// Device returns the pinned device key.
func (p *PinnedKeys) Device() Key { return p.device }

// MasterKey returns the pinned master key, if any.
func (p *PinnedKeys) MasterKey() (Key, bool) {
	if p.master == nil {
		return Key{}, false
	}
	return *p.master, true
}

func (p *PinnedKeys) lookup(wire string) (Key, bool) {
	if p.device.id.String() == wire {
		return p.device, true
	}
	if p.master != nil && p.master.id.String() == wire {
		return *p.master, true
	}
	return Key{}, false
}

// MACContent is the mac and keys fields of m.key.verification.mac.
type MACContent struct {
	MAC  map[string]string `json:"mac"`
	Keys string            `json:"keys"`
}

// macInfo is the MAC info prefix: no separators, the MAC's sender first.
func macInfo(f *Flow, weSend bool) string {
	s, r := f.Our, f.Their
	if !weSend {
		s, r = r, s
	}
	return "MATRIX_KEY_VERIFICATION_MAC" + s.User.String() + s.Device.String() + r.User.String() + r.Device.String() + f.ID
}

// MACs builds our m.key.verification.mac content for the keys we offer
// (normally our device key, and our master key). It refuses an offer whose
// device ID collides with an offered cross-signing key.
func (s *Established) MACs(m MACMethod, f Flow, ours []Key) (*MACContent, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if len(ours) == 0 || len(ours) > MaxMACEntries {
		return nil, ErrNoKeys
	}
	var devs []id.DeviceID
	var cs []keys.Ed25519PublicKey
	for _, k := range ours {
		if d, ok := k.id.DeviceID(); ok {
			devs = append(devs, d)
		} else {
			cs = append(cs, k.key)
		}
	}
	if err := checkCollisions(devs, cs); err != nil {
		return nil, err
	}
	base := macInfo(&f, true)
	out := &MACContent{MAC: make(map[string]string, len(ours))}
	ids := make([]string, 0, len(ours))
	for _, k := range ours {
		w := k.id.String()
		if _, dup := out.MAC[w]; dup {
			return nil, fmt.Errorf("sas: key %s offered twice: %w", w, ErrInvalidFlow)
		}
		mac, err := s.CalculateMAC(m, k.key.String(), base+w)
		if err != nil {
			return nil, err
		}
		out.MAC[w] = mac
		ids = append(ids, w)
	}
	keysMAC, err := s.CalculateMAC(m, keyIDList(ids), base+"KEY_IDS")
	if err != nil {
		return nil, err
	}
	out.Keys = keysMAC
	return out, nil
}

// keyIDList is the sorted, comma-joined key ID list that the KEY_IDS MAC
// covers.
func keyIDList(ids []string) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// VerifyMACs checks the other side's m.key.verification.mac content. It
// checks the KEY_IDS MAC over the sorted list of the key IDs present, then
// resolves every key ID against the pinned keys only (an ID not pinned
// fails the whole message with [ErrUnexpectedKeyID]) and checks its MAC
// against the pinned public key. Any failure returns no keys; on success it
// returns the keys verified, each with the public key pinned for it.
func (s *Established) VerifyMACs(m MACMethod, f Flow, pinned *PinnedKeys, c *MACContent) ([]Key, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	if len(c.MAC) == 0 {
		return nil, ErrNoKeys
	}
	if len(c.MAC) > MaxMACEntries {
		return nil, fmt.Errorf("sas: %d keys in a MAC message: %w", len(c.MAC), ErrUnexpectedKeyID)
	}
	base := macInfo(&f, false)
	ids := make([]string, 0, len(c.MAC))
	for w := range c.MAC {
		ids = append(ids, w)
	}
	wantKeys, err := s.CalculateMAC(m, keyIDList(ids), base+"KEY_IDS")
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(wantKeys), []byte(c.Keys)) != 1 {
		return nil, fmt.Errorf("sas: KEY_IDS: %w", ErrKeyMismatch)
	}
	slices.Sort(ids)
	verified := make([]Key, 0, len(ids))
	for _, w := range ids {
		k, ok := pinned.lookup(w)
		if !ok {
			return nil, ErrUnexpectedKeyID
		}
		want, err := s.CalculateMAC(m, k.key.String(), base+w)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(c.MAC[w])) != 1 {
			return nil, ErrKeyMismatch
		}
		verified = append(verified, k)
	}
	return verified, nil
}
