package e2ee

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"

	"myelin/keys"
)

// Attachment errors (threat model B15).
var (
	// ErrAttachmentHash: the downloaded bytes do not match hashes.sha256;
	// the server (or anyone) changed them. Nothing was decrypted.
	ErrAttachmentHash = errors.New("e2ee: attachment: sha256 of the ciphertext does not match the event")
	// ErrAttachmentInvalid: the EncryptedFile description is not v2
	// A256CTR with a 32-byte key and a 16-byte IV.
	ErrAttachmentInvalid = errors.New("e2ee: attachment: unsupported or malformed encryption info")
	// ErrAttachmentTooLarge: the ciphertext exceeds the caller's limit.
	ErrAttachmentTooLarge = errors.New("e2ee: attachment: too large")
)

// JWK is the attachment key (spec "Sending encrypted attachments").
type JWK struct {
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	K      string   `json:"k"`
	Ext    bool     `json:"ext"`
}

// EncryptedFile is the "file" object of an encrypted attachment
// (https://spec.matrix.org/v1.16/client-server-api/#sending-encrypted-attachments).
// It travels inside the Megolm-encrypted event, so the server never sees
// the key.
type EncryptedFile struct {
	URL    string            `json:"url"`
	Key    JWK               `json:"key"`
	IV     string            `json:"iv"`
	Hashes map[string]string `json:"hashes"`
	V      string            `json:"v"`
}

// EncryptAttachment encrypts plaintext with a fresh AES-256-CTR key and IV
// (the IV's low 64 bits are zero, as the spec requires) and returns the
// ciphertext to upload and the description to put in the event (set URL
// after the upload).
func EncryptAttachment(rand io.Reader, plaintext []byte) ([]byte, *EncryptedFile, error) {
	var key [32]byte
	var iv [16]byte
	if _, err := io.ReadFull(rand, key[:]); err != nil {
		return nil, nil, fmt.Errorf("e2ee: attachment: %w", err)
	}
	if _, err := io.ReadFull(rand, iv[:8]); err != nil {
		return nil, nil, fmt.Errorf("e2ee: attachment: %w", err)
	}
	blk, _ := aes.NewCipher(key[:])
	ct := make([]byte, len(plaintext))
	cipher.NewCTR(blk, iv[:]).XORKeyStream(ct, plaintext)
	sum := sha256.Sum256(ct)
	f := &EncryptedFile{
		Key: JWK{Kty: "oct", KeyOps: []string{"encrypt", "decrypt"}, Alg: "A256CTR",
			K: base64.RawURLEncoding.EncodeToString(key[:]), Ext: true},
		IV:     keys.EncodeBase64(iv[:]),
		Hashes: map[string]string{"sha256": keys.EncodeBase64(sum[:])},
		V:      "v2",
	}
	clear(key[:])
	return ct, f, nil
}

// DecryptAttachment checks the ciphertext's SHA-256 against f before
// decrypting anything (spec MUST), and refuses anything but v2 A256CTR or
// ciphertexts longer than maxSize.
func DecryptAttachment(ciphertext []byte, f *EncryptedFile, maxSize int) ([]byte, error) {
	if len(ciphertext) > maxSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrAttachmentTooLarge, len(ciphertext))
	}
	if f == nil || f.V != "v2" || f.Key.Alg != "A256CTR" || f.Key.Kty != "oct" || !slices.Contains(f.Key.KeyOps, "decrypt") {
		return nil, ErrAttachmentInvalid
	}
	key, err := base64.RawURLEncoding.DecodeString(trimPad(f.Key.K))
	if err != nil || len(key) != 32 {
		return nil, ErrAttachmentInvalid
	}
	iv, err := keys.DecodeBase64Lenient(f.IV)
	if err != nil || len(iv) != 16 {
		return nil, ErrAttachmentInvalid
	}
	want, err := keys.DecodeBase64Lenient(f.Hashes["sha256"])
	if err != nil || len(want) != sha256.Size {
		return nil, ErrAttachmentInvalid
	}
	got := sha256.Sum256(ciphertext)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return nil, ErrAttachmentHash
	}
	blk, _ := aes.NewCipher(key)
	pt := make([]byte, len(ciphertext))
	cipher.NewCTR(blk, iv).XORKeyStream(pt, ciphertext)
	clear(key)
	return pt, nil
}

func trimPad(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}
