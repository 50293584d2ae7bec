package ssss

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"myelin/keys"
)

type vectorFile struct {
	Key1 struct {
		ID          string          `json:"id"`
		Description json.RawMessage `json:"description"`
		RecoveryKey string          `json:"recovery_key"`
		Passphrase  string          `json:"passphrase"`
	} `json:"key1"`
	Key2 struct {
		ID          string          `json:"id"`
		Description json.RawMessage `json:"description"`
		RecoveryKey string          `json:"recovery_key"`
	} `json:"key2"`
	MasterKeySecret struct {
		Name            string          `json:"name"`
		Content         json.RawMessage `json:"content"`
		DecryptedKeyHex string          `json:"decrypted_key_hex"`
	} `json:"master_key_secret"`
}

func loadVectors(t testing.TB) *vectorFile {
	t.Helper()
	b, err := os.ReadFile("testdata/mautrix.json")
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return &v
}

func mustDesc(t testing.TB, raw []byte) *KeyDescription {
	t.Helper()
	d, err := ParseKeyDescription(raw)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustRecovery(t testing.TB, s string) *Key {
	t.Helper()
	k, err := ParseRecoveryKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fixedReader returns the same byte forever.
type fixedReader byte

func (r fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

func TestMautrixRecoveryKeys(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	d1 := mustDesc(t, v.Key1.Description)
	d2 := mustDesc(t, v.Key2.Description) // padded iv and mac
	k1 := mustRecovery(t, v.Key1.RecoveryKey)
	k2 := mustRecovery(t, v.Key2.RecoveryKey)
	if k1.RecoveryKey() != v.Key1.RecoveryKey || k2.RecoveryKey() != v.Key2.RecoveryKey {
		t.Fatal("recovery keys do not round-trip")
	}
	if _, err := Unlock(d1, k1); err != nil {
		t.Errorf("key1: %v", err)
	}
	if _, err := Unlock(d2, k2); err != nil {
		t.Errorf("key2 (padded iv/mac): %v", err)
	}
	if _, err := Unlock(d1, k2); !errors.Is(err, ErrWrongKey) {
		t.Errorf("key2 against key1's description: %v, want ErrWrongKey", err)
	}
	if _, err := Unlock(d2, k1); !errors.Is(err, ErrWrongKey) {
		t.Errorf("key1 against key2's description: %v, want ErrWrongKey", err)
	}
}

func TestMautrixPassphrase(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("500,000 PBKDF2 iterations")
	}
	v := loadVectors(t)
	d1 := mustDesc(t, v.Key1.Description)
	u, err := UnlockWithPassphrase(d1, v.Key1.Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	if !u.Key().Equal(mustRecovery(t, v.Key1.RecoveryKey)) {
		t.Error("passphrase key differs from the recovery key")
	}
	if _, err := UnlockWithPassphrase(d1, "incorrect horse battery staple"); !errors.Is(err, ErrWrongKey) {
		t.Errorf("wrong passphrase: %v, want ErrWrongKey", err)
	}
	if _, err := UnlockWithPassphrase(mustDesc(t, v.Key2.Description), "x"); !errors.Is(err, ErrNoPassphrase) {
		t.Errorf("no passphrase params: %v", err)
	}
}

func TestMautrixSecret(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	u, err := Unlock(mustDesc(t, v.Key1.Description), mustRecovery(t, v.Key1.RecoveryKey))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseSecretContent(v.MasterKeySecret.Content)
	if err != nil {
		t.Fatal(err)
	}
	e := c.Encrypted[v.Key1.ID]
	pt, err := u.Decrypt(v.MasterKeySecret.Name, &e)
	if err != nil {
		t.Fatal(err)
	}
	k, err := DecodeKeySecret(pt)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(k[:]) != v.MasterKeySecret.DecryptedKeyHex {
		t.Errorf("decrypted %x", k)
	}

	// The secret name is bound by the HKDF info: a ciphertext read under
	// another name fails its MAC.
	if _, err := u.Decrypt("m.cross_signing.self_signing", &e); !errors.Is(err, ErrBadMAC) {
		t.Errorf("wrong name: %v, want ErrBadMAC", err)
	}
}

func TestDecryptRefusesTampering(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	u, err := Unlock(mustDesc(t, v.Key1.Description), mustRecovery(t, v.Key1.RecoveryKey))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := ParseSecretContent(v.MasterKeySecret.Content)
	good := c.Encrypted[v.Key1.ID]
	flip := func(s string, i int) string {
		b, err := keys.DecodeBase64Lenient(s)
		if err != nil {
			t.Fatal(err)
		}
		b[i] ^= 1
		return keys.EncodeBase64(b)
	}
	cases := []struct {
		name string
		mut  func(e *EncryptedData)
		want error
	}{
		{"mac bit", func(e *EncryptedData) { e.MAC = flip(e.MAC, 31) }, ErrBadMAC},
		{"ciphertext first bit", func(e *EncryptedData) { e.Ciphertext = flip(e.Ciphertext, 0) }, ErrBadMAC},
		{"ciphertext last bit", func(e *EncryptedData) { e.Ciphertext = flip(e.Ciphertext, 43) }, ErrBadMAC},
		{"ciphertext truncated", func(e *EncryptedData) { e.Ciphertext = e.Ciphertext[:40] }, ErrBadMAC},
		{"mac truncated", func(e *EncryptedData) { e.MAC = e.MAC[:40] }, ErrMalformed},
		{"iv short", func(e *EncryptedData) { e.IV = "AAAA" }, ErrMalformed},
		{"iv not base64", func(e *EncryptedData) { e.IV = "!!!!!!!!!!!!!!!!!!!!!!" }, ErrMalformed},
		{"mac missing", func(e *EncryptedData) { e.MAC = "" }, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := good
			tc.mut(&e)
			pt, err := u.Decrypt(v.MasterKeySecret.Name, &e)
			if !errors.Is(err, tc.want) || pt != nil {
				t.Fatalf("Decrypt: %v (plaintext %v), want %v", err, pt != nil, tc.want)
			}
		})
	}
}

// TestIVNotCoveredByMAC records the limitation of the format (threat model
// A6): a swapped IV passes the MAC and yields different bytes. The caller's
// semantic check is what catches it; here, the bytes are not the key.
func TestIVNotCoveredByMAC(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	u, _ := Unlock(mustDesc(t, v.Key1.Description), mustRecovery(t, v.Key1.RecoveryKey))
	c, _ := ParseSecretContent(v.MasterKeySecret.Content)
	e := c.Encrypted[v.Key1.ID]
	e.IV = "AAAAAAAAAAAAAAAAAAAAAA"
	pt, err := u.Decrypt(v.MasterKeySecret.Name, &e)
	if err != nil {
		t.Fatalf("the MAC does not cover the IV, so this decrypts: %v", err)
	}
	k, err := DecodeKeySecret(pt)
	if err == nil && hex.EncodeToString(k[:]) == v.MasterKeySecret.DecryptedKeyHex {
		t.Fatal("a swapped IV gave the original secret")
	}
}

func TestUnlockRefusesMissingKeyCheck(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	k := mustRecovery(t, v.Key1.RecoveryKey)
	full := mustDesc(t, v.Key1.Description)
	for _, tc := range []struct {
		name    string
		iv, mac string
	}{
		{"neither", "", ""},
		{"iv only", full.IV, ""},
		{"mac only", "", full.MAC},
	} {
		d := *full
		d.IV, d.MAC = tc.iv, tc.mac
		if _, err := Unlock(&d, k); !errors.Is(err, ErrMissingKeyCheck) {
			t.Errorf("%s: %v, want ErrMissingKeyCheck", tc.name, err)
		}
	}
}

func TestPassphraseParamsRefused(t *testing.T) {
	t.Parallel()
	good := PassphraseParams{Algorithm: PassphraseAlgorithm, Salt: "y863BOoqOadgDp8S3FtHXikDJEalsQ7d", Iterations: MinPBKDF2Iterations}
	if err := good.Check(); err != nil {
		t.Fatalf("floor itself refused: %v", err)
	}
	cases := []struct {
		name string
		mut  func(p *PassphraseParams)
		want error
	}{
		{"below floor", func(p *PassphraseParams) { p.Iterations = MinPBKDF2Iterations - 1 }, ErrWeakPassphraseParams},
		{"rust-sdk test count 10", func(p *PassphraseParams) { p.Iterations = 10 }, ErrWeakPassphraseParams},
		{"zero", func(p *PassphraseParams) { p.Iterations = 0 }, ErrWeakPassphraseParams},
		{"negative", func(p *PassphraseParams) { p.Iterations = -1 }, ErrWeakPassphraseParams},
		{"above ceiling", func(p *PassphraseParams) { p.Iterations = MaxPBKDF2Iterations + 1 }, ErrWeakPassphraseParams},
		{"short salt", func(p *PassphraseParams) { p.Salt = "MmMsAlty" }, ErrWeakPassphraseParams},
		{"128 bits", func(p *PassphraseParams) { p.Bits = 128 }, ErrWeakPassphraseParams},
		{"other algorithm", func(p *PassphraseParams) { p.Algorithm = "m.scrypt" }, ErrUnsupportedAlgorithm},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := good
			tc.mut(&p)
			if _, err := DeriveKeyFromPassphrase("pw", &p); !errors.Is(err, tc.want) {
				t.Errorf("Derive: %v, want %v", err, tc.want)
			}
			d := KeyDescription{Algorithm: Algorithm, Passphrase: &p}
			raw, _ := json.Marshal(d)
			if _, err := ParseKeyDescription(raw); !errors.Is(err, tc.want) {
				t.Errorf("ParseKeyDescription: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseKeyDescriptionRefuses(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		`{"algorithm":"m.secret_storage.v2"}`,
		`{"algorithm":"m.secret_storage.v1.aes-hmac-sha2","iv":"AAAA"}`,
		`{"algorithm":"m.secret_storage.v1.aes-hmac-sha2","mac":"AAAA"}`,
		`[]`,
		`{"algorithm":"m.secret_storage.v1.aes-hmac-sha2"` + strings.Repeat(" ", MaxContentSize) + `}`,
	} {
		if _, err := ParseKeyDescription([]byte(in)); err == nil {
			t.Errorf("accepted %.80q", in)
		}
	}
}

func TestRoundTripAndIV(t *testing.T) {
	t.Parallel()
	k, err := GenerateKey(fixedReader(0x42))
	if err != nil {
		t.Fatal(err)
	}
	pp := &PassphraseParams{Algorithm: PassphraseAlgorithm, Salt: strings.Repeat("s", 32), Iterations: MinPBKDF2Iterations}
	d, err := NewKeyDescription(fixedReader(0xff), k, "m.default", pp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(d)
	d2, err := ParseKeyDescription(raw)
	if err != nil {
		t.Fatal(err)
	}
	u, err := Unlock(d2, k)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(keys.EncodeBase64(bytes.Repeat([]byte{7}, 32)))
	e, err := u.Encrypt(fixedReader(0xff), "m.megolm_backup.v1", secret)
	if err != nil {
		t.Fatal(err)
	}
	iv, _ := keys.DecodeBase64(e.IV)
	if iv[8] != 0x7f || iv[7] != 0xff || iv[9] != 0xff {
		t.Errorf("bit 63 of the IV is not cleared: %x", iv)
	}
	if strings.ContainsRune(e.IV+e.MAC+e.Ciphertext, '=') {
		t.Error("output is padded")
	}
	pt, err := u.Decrypt("m.megolm_backup.v1", e)
	if err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := DecodeKeySecret(pt); err != nil {
		t.Error(err)
	}
	if _, err := u.Encrypt(fixedReader(0), "x", make([]byte, MaxSecretSize+1)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized secret: %v", err)
	}
	if _, err := NewKeyDescription(fixedReader(0), k, "", &PassphraseParams{Algorithm: PassphraseAlgorithm, Salt: "short", Iterations: 1}); err == nil {
		t.Error("NewKeyDescription accepted weak passphrase params")
	}
}

func TestNewPassphraseParams(t *testing.T) {
	t.Parallel()
	p, err := NewPassphraseParams(fixedReader(5))
	if err != nil {
		t.Fatal(err)
	}
	if p.Iterations != DefaultPBKDF2Iterations || len(p.Salt) != 32 || p.Check() != nil {
		t.Errorf("params %+v", p)
	}
	id, err := GenerateKeyID(fixedReader(61))
	if err != nil || id != strings.Repeat("9", 32) {
		t.Errorf("GenerateKeyID = %q, %v", id, err)
	}
}

func TestDecodeKeySecret(t *testing.T) {
	t.Parallel()
	k := bytes.Repeat([]byte{9}, 32)
	for _, s := range []string{keys.EncodeBase64(k), keys.EncodeBase64(k) + "="} {
		got, err := DecodeKeySecret([]byte(s))
		if err != nil || !bytes.Equal(got[:], k) {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", keys.EncodeBase64(k[:31]), keys.EncodeBase64(append(k, 1)), "not base64!"} {
		if _, err := DecodeKeySecret([]byte(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	k, _ := NewKey(bytes.Repeat([]byte{0xAB}, 32))
	u := &UnlockedKey{key: k}
	for _, v := range []any{k, u} {
		out := fmt.Sprintf("%v %+v %#v %s %x %q", v, v, v, v, v, v)
		if strings.Contains(strings.ToLower(out), "abab") || strings.Contains(out, "q6ur") || !strings.Contains(out, "REDACTED") {
			t.Errorf("formatting leaks: %s", out)
		}
	}
}

func TestParseRecoveryKeyRefuses(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	bad := v.Key1.RecoveryKey[:len(v.Key1.RecoveryKey)-1] + "D" // parity or length breaks
	if _, err := ParseRecoveryKey(bad); !errors.Is(err, ErrInvalidRecoveryKey) {
		t.Errorf("%v", err)
	}
}

func FuzzDecrypt(f *testing.F) {
	v := loadVectors(f)
	c, _ := ParseSecretContent(v.MasterKeySecret.Content)
	e := c.Encrypted[v.Key1.ID]
	f.Add(e.IV, e.Ciphertext, e.MAC)
	f.Add(e.IV, e.Ciphertext[:10], e.MAC)
	f.Add("", "", "")
	f.Add(e.IV+"A", e.Ciphertext, e.MAC+"=")
	key := mustRecovery(f, v.Key1.RecoveryKey)
	u := &UnlockedKey{key: key}
	f.Fuzz(func(t *testing.T, iv, ct, mac string) {
		in := EncryptedData{IV: iv, Ciphertext: ct, MAC: mac}
		pt, err := u.Decrypt(v.MasterKeySecret.Name, &in)
		if err != nil {
			if pt != nil {
				t.Fatal("plaintext returned with an error")
			}
			return
		}
		// Only the vector (up to base64 padding and the IV) can pass the MAC.
		got, _ := keys.DecodeBase64Lenient(ct)
		want, _ := keys.DecodeBase64Lenient(e.Ciphertext)
		if !bytes.Equal(got, want) {
			t.Fatalf("a different ciphertext passed the MAC")
		}
	})
}

func FuzzParseKeyDescription(f *testing.F) {
	v := loadVectors(f)
	f.Add([]byte(v.Key1.Description))
	f.Add([]byte(v.Key2.Description))
	f.Add([]byte(`{"algorithm":"m.secret_storage.v1.aes-hmac-sha2","passphrase":{"algorithm":"m.pbkdf2","iterations":1e400}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseKeyDescription(b)
		if err != nil {
			return
		}
		if d.Algorithm != Algorithm || (d.Passphrase != nil && d.Passphrase.Check() != nil) {
			t.Fatal("accepted a description that fails its own checks")
		}
	})
}

func TestRustSDKVectors(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/rust-sdk.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Base58 struct {
			RecoveryKey string          `json:"recovery_key"`
			Description json.RawMessage `json:"description"`
		} `json:"base58"`
		Passphrase struct {
			Passphrase  string          `json:"passphrase"`
			Description json.RawMessage `json:"description"`
		} `json:"passphrase"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if _, err := Unlock(mustDesc(t, v.Base58.Description), mustRecovery(t, v.Base58.RecoveryKey)); err != nil {
		t.Errorf("base58 key: %v", err)
	}
	// rust-sdk's test key uses 10 PBKDF2 iterations: below our floor, so the
	// description is refused...
	if _, err := ParseKeyDescription(v.Passphrase.Description); !errors.Is(err, ErrWeakPassphraseParams) {
		t.Errorf("10 iterations: %v, want ErrWeakPassphraseParams", err)
	}
	// ...although the derivation itself agrees with rust-sdk.
	var d KeyDescription
	if err := json.Unmarshal(v.Passphrase.Description, &d); err != nil {
		t.Fatal(err)
	}
	k, err := derivePBKDF2(v.Passphrase.Passphrase, d.Passphrase.Salt, d.Passphrase.Iterations)
	if err != nil {
		t.Fatal(err)
	}
	d.Passphrase = nil
	if _, err := Unlock(&d, k); err != nil {
		t.Errorf("passphrase-derived key fails the key check: %v", err)
	}
}
