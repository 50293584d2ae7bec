package recovery

import (
	"encoding/json"
	"errors"
	"testing"

	"myelin/crypto/ssss"
)

func TestSecretStorageFirstUsePinAndReopen(t *testing.T) {
	w := newWorld(t, "")
	l, err := OpenSecretStorage(w.boot.AccountData, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.UnlockWithRecoveryKey("EsTE s92N EtaX s2h6 VQYF 9Kao tHYL mkyL GKMh isZb KJ4E tvoC"); !errors.Is(err, ssss.ErrWrongKey) {
		t.Fatalf("someone else's recovery key: %v", err)
	}
	u, err := l.UnlockWithRecoveryKey(w.boot.StorageKey.RecoveryKey())
	if err != nil {
		t.Fatal(err)
	}
	pin := u.Pin()
	bp, _ := json.Marshal(pin)
	wp, _ := json.Marshal(w.boot.Pin)
	if string(bp) != string(wp) {
		t.Fatalf("pin after unlock %s, after bootstrap %s", bp, wp)
	}
	// The same description re-encoded (other key order, whitespace) is not
	// a change.
	ad := copyAD(w.boot.AccountData)
	var m map[string]any
	_ = json.Unmarshal(ad[KeyTypePrefix+u.KeyID], &m)
	ad[KeyTypePrefix+u.KeyID], _ = json.MarshalIndent(m, "", "  ")
	if _, err := OpenSecretStorage(ad, pin); err != nil {
		t.Fatalf("re-encoded description: %v", err)
	}
	if s := (&UnlockedStorage{KeyID: "k"}).String(); s != "recovery.UnlockedStorage{k, <redacted>}" {
		t.Fatal(s)
	}
}

// TestKeyDescriptionChanged covers B8 rules 1 and 5: after the pin, a
// changed default key or description is refused until the user confirms.
func TestKeyDescriptionChanged(t *testing.T) {
	w := newWorld(t, "")
	pin := w.boot.Pin
	kid := w.boot.KeyID
	r := rnd(80)
	serverKey, _ := ssss.GenerateKey(r)
	serverDesc, _ := ssss.NewKeyDescription(r, serverKey, "", nil)
	serverDescJSON, _ := json.Marshal(serverDesc)
	edit := func(f func(d map[string]any)) AccountData {
		ad := copyAD(w.boot.AccountData)
		var d map[string]any
		_ = json.Unmarshal(ad[KeyTypePrefix+kid], &d)
		f(d)
		ad[KeyTypePrefix+kid], _ = json.Marshal(d)
		return ad
	}
	switched := copyAD(w.boot.AccountData)
	switched[KeyTypePrefix+"SERVERKEY"] = serverDescJSON
	switched[DefaultKeyType] = json.RawMessage(`{"key":"SERVERKEY"}`)

	cases := []struct {
		name string
		ad   AccountData
		want ChangeKind
	}{
		{"default key pointed at the server's key", switched, DefaultKeyChanged},
		{"key check stripped", edit(func(d map[string]any) { delete(d, "iv"); delete(d, "mac") }), DescriptionChanged},
		{"key check replaced", edit(func(d map[string]any) { d["iv"], d["mac"] = serverDesc.IV, serverDesc.MAC }), DescriptionChanged},
		{"passphrase added", edit(func(d map[string]any) {
			d["passphrase"] = map[string]any{"algorithm": "m.pbkdf2", "salt": "0123456789abcdef0123456789abcdef", "iterations": 500000}
		}), DescriptionChanged},
		{"name changed", edit(func(d map[string]any) { d["name"] = "server" }), DescriptionChanged},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenSecretStorage(tc.ad, pin)
			var ce *KeyDescriptionChangedError
			if !errors.Is(err, ErrKeyDescriptionChanged) || !errors.As(err, &ce) || ce.Kind != tc.want {
				t.Fatalf("got %v, want %s change", err, tc.want)
			}
		})
	}
	// After the user confirms (nil pin), the new default key needs its own
	// key: our recovery key does not open it, and nothing is migrated.
	l, err := OpenSecretStorage(switched, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.UnlockWithRecoveryKey(w.boot.StorageKey.RecoveryKey()); !errors.Is(err, ssss.ErrWrongKey) {
		t.Fatalf("old key on the new default: %v", err)
	}
	// Without a pin, a description without key check is still refused.
	if _, err := OpenSecretStorage(cases[1].ad, nil); !errors.Is(err, ssss.ErrMissingKeyCheck) {
		t.Fatalf("stripped key check, no pin: %v", err)
	}
}

// TestPassphraseParamsChanged covers B8 (b): lowered iterations or a
// changed salt on a pinned passphrase key.
func TestPassphraseParamsChanged(t *testing.T) {
	r := rnd(81)
	key, _ := ssss.GenerateKey(r)
	pp, _ := ssss.NewPassphraseParams(r)
	desc, _ := ssss.NewKeyDescription(r, key, "", pp)
	dj, _ := json.Marshal(desc)
	ad := AccountData{DefaultKeyType: json.RawMessage(`{"key":"K"}`), KeyTypePrefix + "K": dj}
	l, err := OpenSecretStorage(ad, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := l.Unlock(key)
	if err != nil {
		t.Fatal(err)
	}
	pin := u.Pin()
	for _, tc := range []struct {
		name string
		edit func(p *ssss.PassphraseParams)
	}{
		{"iterations lowered", func(p *ssss.PassphraseParams) { p.Iterations = ssss.MinPBKDF2Iterations }},
		{"salt changed", func(p *ssss.PassphraseParams) { p.Salt = "ffffffffffffffffffffffffffffffff" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := *desc
			p := *desc.Passphrase
			tc.edit(&p)
			d.Passphrase = &p
			b, _ := json.Marshal(&d)
			ad2 := copyAD(ad)
			ad2[KeyTypePrefix+"K"] = b
			if _, err := OpenSecretStorage(ad2, pin); !errors.Is(err, ErrKeyDescriptionChanged) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// TestPBKDF2Floors: reading refuses counts below ssss.MinPBKDF2Iterations;
// writing refuses counts below MinWritePBKDF2Iterations and short salts
// (B8 rule 2).
func TestPBKDF2Floors(t *testing.T) {
	r := rnd(82)
	key, _ := ssss.GenerateKey(r)
	mk := func(iter int, salt string) AccountData {
		d, err := ssss.NewKeyDescription(r, key, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		b, _ := json.Marshal(d)
		_ = json.Unmarshal(b, &m)
		m["passphrase"] = map[string]any{"algorithm": "m.pbkdf2", "salt": salt, "iterations": iter}
		b, _ = json.Marshal(m)
		return AccountData{DefaultKeyType: json.RawMessage(`{"key":"K"}`), KeyTypePrefix + "K": b}
	}
	const salt32 = "0123456789abcdef0123456789abcdef"
	if _, err := OpenSecretStorage(mk(1000, salt32), nil); !errors.Is(err, ssss.ErrWeakPassphraseParams) {
		t.Fatalf("1000 iterations: %v", err)
	}
	for _, tc := range []struct {
		name string
		iter int
		salt string
		ok   bool
	}{
		{"read floor, below write floor", ssss.MinPBKDF2Iterations, salt32, false},
		{"short salt", MinWritePBKDF2Iterations, "0123456789abcdef", false},
		{"write floor", MinWritePBKDF2Iterations, salt32, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := OpenSecretStorage(mk(tc.iter, tc.salt), nil)
			if err != nil {
				t.Fatal(err)
			}
			u, err := l.Unlock(key)
			if err != nil {
				t.Fatal(err)
			}
			_, err = u.EncryptSecret(r, SecretBackup, []byte("x"))
			if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, ssss.ErrWeakPassphraseParams)) {
				t.Fatalf("write: %v", err)
			}
		})
	}
}

func TestOpenSecretStorageMissing(t *testing.T) {
	for _, ad := range []AccountData{
		{},
		{DefaultKeyType: json.RawMessage(`{"key":""}`)},
		{DefaultKeyType: json.RawMessage(`{"key":"K"}`)},
	} {
		if _, err := OpenSecretStorage(ad, nil); !errors.Is(err, ErrNoDefaultKey) {
			t.Errorf("%v: %v", ad, err)
		}
	}
	if _, err := OpenSecretStorage(AccountData{DefaultKeyType: json.RawMessage(`{"key":1}`)}, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("bad default key: %v", err)
	}
}
