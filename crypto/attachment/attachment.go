package attachment

import (
	"bytes"
	"crypto/aes"
	gocipher "crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"strings"

	"myelin/keys"
)

// Version is the only EncryptedFile version this package reads and writes.
const Version = "v2"

// KeySize is the AES-256 key size.
const KeySize = 32

// IVSize is the size of the AES-CTR counter block.
const IVSize = 16

// MaxInfoSize bounds the EncryptedFile JSON that ParseInfo accepts.
const MaxInfoSize = 16 << 10

var (
	// ErrHashMismatch reports a ciphertext whose SHA-256 is not the one in
	// the event: it was altered or truncated.
	ErrHashMismatch = errors.New("attachment: ciphertext hash mismatch")
	// ErrTooLarge reports a file over the caller's size limit.
	ErrTooLarge = errors.New("attachment: file too large")
	// ErrInvalidInfo reports EncryptedFile JSON that fails validation.
	ErrInvalidInfo = errors.New("attachment: invalid encrypted file info")
)

// InfoError says which field of the EncryptedFile JSON was refused.
type InfoError struct{ Field string }

// Error implements error.
func (e *InfoError) Error() string { return "attachment: invalid encrypted file info: " + e.Field }

// Unwrap makes errors.Is(err, ErrInvalidInfo) hold.
func (e *InfoError) Unwrap() error { return ErrInvalidInfo }

// JWK is the JSON Web Key of an EncryptedFile.
type JWK struct {
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	// K is the key in URL-safe unpadded base64.
	K   string `json:"k"`
	Ext bool   `json:"ext"`
}

// Info is an EncryptedFile object (content.file or info.thumbnail_file).
type Info struct {
	URL string `json:"url,omitempty"`
	V   string `json:"v"`
	Key JWK    `json:"key"`
	// IV is the 16-byte counter block, standard unpadded base64.
	IV string `json:"iv"`
	// Hashes maps algorithm names to the base64 hash of the ciphertext;
	// "sha256" is required.
	Hashes map[string]string `json:"hashes"`
}

// ParseInfo parses and validates EncryptedFile JSON (see [Info.Validate]).
func ParseInfo(b []byte) (*Info, error) {
	if len(b) > MaxInfoSize {
		return nil, &InfoError{"too large"}
	}
	var in Info
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, &InfoError{"not an EncryptedFile object"}
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	return &in, nil
}

// Validate checks every field the spec constrains: v is "v2"; the JWK has
// kty "oct", alg "A256CTR", ext true, key_ops containing "encrypt" and
// "decrypt", and a 32-byte key; the IV is 16 bytes; hashes.sha256 is 32
// bytes.
func (in *Info) Validate() error {
	_, err := in.parse()
	return err
}

type parsed struct {
	key  [KeySize]byte
	iv   [IVSize]byte
	hash [sha256.Size]byte
}

func (p *parsed) wipe() { clear(p.key[:]) }

func (in *Info) parse() (*parsed, error) {
	var p parsed
	switch {
	case in.V != Version:
		return nil, &InfoError{"v"}
	case in.Key.Kty != "oct":
		return nil, &InfoError{"key.kty"}
	case in.Key.Alg != "A256CTR":
		return nil, &InfoError{"key.alg"}
	case !in.Key.Ext:
		return nil, &InfoError{"key.ext"}
	case !slices.Contains(in.Key.KeyOps, "encrypt") || !slices.Contains(in.Key.KeyOps, "decrypt"):
		return nil, &InfoError{"key.key_ops"}
	}
	if err := decodeFixed(p.key[:], in.Key.K, base64.RawURLEncoding); err != nil {
		return nil, &InfoError{"key.k"}
	}
	if err := decodeFixed(p.iv[:], in.IV, base64.RawStdEncoding); err != nil {
		p.wipe()
		return nil, &InfoError{"iv"}
	}
	if err := decodeFixed(p.hash[:], in.Hashes["sha256"], base64.RawStdEncoding); err != nil {
		p.wipe()
		return nil, &InfoError{"hashes.sha256"}
	}
	return &p, nil
}

// decodeFixed decodes s (padding tolerated, since some clients pad) into
// exactly len(dst) bytes.
func decodeFixed(dst []byte, s string, enc *base64.Encoding) error {
	s = strings.TrimRight(s, "=")
	if enc.DecodedLen(len(s)) != len(dst) {
		return ErrInvalidInfo
	}
	n, err := enc.Strict().Decode(dst, []byte(s))
	if err != nil || n != len(dst) {
		return ErrInvalidInfo
	}
	return nil
}

// String hides the key.
func (in Info) String() string {
	return fmt.Sprintf("attachment.Info{url %q, v %q, key REDACTED}", in.URL, in.V)
}

// GoString hides the key.
func (in Info) GoString() string { return in.String() }

// Encryptor encrypts a stream. Read the ciphertext from it until io.EOF, then
// call Info.
type Encryptor struct {
	src    io.Reader
	stream gocipher.Stream
	sha    hash.Hash
	key    [KeySize]byte
	iv     [IVSize]byte
	n, max int64
	done   bool
	err    error
}

// NewEncryptor starts encrypting plaintext from src under a fresh key (32
// bytes from rand) and IV (8 bytes from rand followed by 8 zero bytes, so
// the 64-bit counter half starts at zero). maxSize bounds the plaintext;
// reading past it fails with [ErrTooLarge].
func NewEncryptor(rand io.Reader, src io.Reader, maxSize int64) (*Encryptor, error) {
	e := &Encryptor{src: src, sha: sha256.New(), max: maxSize}
	if _, err := io.ReadFull(rand, e.key[:]); err != nil {
		return nil, fmt.Errorf("attachment: key: %w", err)
	}
	if _, err := io.ReadFull(rand, e.iv[:8]); err != nil {
		clear(e.key[:])
		return nil, fmt.Errorf("attachment: iv: %w", err)
	}
	block, _ := aes.NewCipher(e.key[:]) // a 32-byte key cannot fail
	e.stream = gocipher.NewCTR(block, e.iv[:])
	return e, nil
}

// Read returns ciphertext.
func (e *Encryptor) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.src.Read(p)
	if n > 0 {
		if e.n+int64(n) > e.max {
			e.err = ErrTooLarge
			clear(p[:n])
			return 0, e.err
		}
		e.n += int64(n)
		e.stream.XORKeyStream(p[:n], p[:n])
		e.sha.Write(p[:n])
	}
	if err == io.EOF {
		e.done = true
	} else if err != nil {
		e.err = err
	}
	return n, err
}

// Info returns the EncryptedFile object for the ciphertext read so far (url
// left empty). It fails until the source has been read to io.EOF.
func (e *Encryptor) Info() (*Info, error) {
	if e.err != nil {
		return nil, e.err
	}
	if !e.done {
		return nil, errors.New("attachment: Info called before the plaintext was read to the end")
	}
	return &Info{
		V: Version,
		Key: JWK{
			Kty:    "oct",
			KeyOps: []string{"encrypt", "decrypt"},
			Alg:    "A256CTR",
			K:      base64.RawURLEncoding.EncodeToString(e.key[:]),
			Ext:    true,
		},
		IV:     keys.EncodeBase64(e.iv[:]),
		Hashes: map[string]string{"sha256": keys.EncodeBase64(e.sha.Sum(nil))},
	}, nil
}

// Encrypt encrypts a whole file in memory.
func Encrypt(rand io.Reader, plaintext []byte) (ciphertext []byte, info *Info, err error) {
	e, err := NewEncryptor(rand, bytes.NewReader(plaintext), int64(len(plaintext)))
	if err != nil {
		return nil, nil, err
	}
	ct, err := io.ReadAll(e)
	if err != nil {
		return nil, nil, err
	}
	info, err = e.Info()
	if err != nil {
		return nil, nil, err
	}
	return ct, info, nil
}

// Decrypt checks the SHA-256 of ciphertext against the info in constant
// time and only then decrypts it.
func Decrypt(info *Info, ciphertext []byte) ([]byte, error) {
	p, err := info.parse()
	if err != nil {
		return nil, err
	}
	defer p.wipe()
	sum := sha256.Sum256(ciphertext)
	if subtle.ConstantTimeCompare(sum[:], p.hash[:]) != 1 {
		return nil, ErrHashMismatch
	}
	out := make([]byte, len(ciphertext))
	block, _ := aes.NewCipher(p.key[:])
	gocipher.NewCTR(block, p.iv[:]).XORKeyStream(out, ciphertext)
	return out, nil
}

// DecryptTo decrypts a file of at most maxSize bytes from src to dst in two
// passes: the first hashes src and compares the hash in constant time; only
// if it matches does the second pass (from offset 0) decrypt to dst. The
// second pass hashes again; if src changed between passes, the bytes
// already written are not authentic and DecryptTo returns [ErrHashMismatch]:
// the caller must then discard what dst received. Give it a source that
// cannot change underneath it (a private temporary file) to rule that out.
func DecryptTo(dst io.Writer, src io.ReadSeeker, info *Info, maxSize int64) (int64, error) {
	p, err := info.parse()
	if err != nil {
		return 0, err
	}
	defer p.wipe()
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("attachment: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(src, maxSize+1))
	if err != nil {
		return 0, fmt.Errorf("attachment: read: %w", err)
	}
	if n > maxSize {
		return 0, ErrTooLarge
	}
	if subtle.ConstantTimeCompare(h.Sum(nil), p.hash[:]) != 1 {
		return 0, ErrHashMismatch
	}
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("attachment: %w", err)
	}
	h.Reset()
	block, _ := aes.NewCipher(p.key[:])
	r := &gocipher.StreamReader{S: gocipher.NewCTR(block, p.iv[:]), R: io.TeeReader(io.LimitReader(src, n), h)}
	w, err := io.Copy(dst, r)
	if err != nil {
		return w, fmt.Errorf("attachment: decrypt: %w", err)
	}
	if w != n || subtle.ConstantTimeCompare(h.Sum(nil), p.hash[:]) != 1 {
		return w, ErrHashMismatch
	}
	return w, nil
}

// DecryptReader reads at most maxSize bytes of ciphertext from src, checks
// the hash and decrypts: the whole file is held in memory once. Use
// [DecryptTo] for large files.
func DecryptReader(src io.Reader, info *Info, maxSize int64) ([]byte, error) {
	if err := info.Validate(); err != nil {
		return nil, err
	}
	ct, err := io.ReadAll(io.LimitReader(src, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("attachment: read: %w", err)
	}
	if int64(len(ct)) > maxSize {
		return nil, ErrTooLarge
	}
	pt, err := Decrypt(info, ct)
	if err != nil {
		return nil, err
	}
	return pt, nil
}
