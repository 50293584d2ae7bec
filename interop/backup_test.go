package interop

// Key backup (m.megolm_backup.v1.curve25519-aes-sha2) against libolm's
// olm/pk.h and mautrix-go's crypto/backup, both ways, plus side-by-side
// benchmarks.

import (
	"bytes"
	"crypto/ecdh"
	"encoding/json"
	"fmt"
	"testing"

	mbackup "maunium.net/go/mautrix/crypto/backup"
	mid "maunium.net/go/mautrix/id"

	"myelin/crypto/backup"
	"myelin/id"
	"myelin/interop/libolm"
	"myelin/keys"
)

var backupOwner = func() id.UserID {
	u, err := id.ParseUserID("@alice:example.org")
	if err != nil {
		panic(err)
	}
	return u
}()

// backupPlaintexts covers the padding boundaries and a realistic entry.
func backupPlaintexts() [][]byte {
	session := []byte(`{"algorithm":"m.megolm.v1.aes-sha2","forwarding_curve25519_key_chain":[],"sender_claimed_keys":{"ed25519":"R2UJWSfgGr64iPENthl/98WGqBtnNlYuP12d6TEuGo4"},"sender_key":"JUUfV6vErSATm3rIOU9DML+IX1SlYxnAAS824xhbhC4","session_key":"AQAAAABc1O9JP2/HXS22iLN1uScFv2UyL33/L3L0sysPKcovQFI0lwKTuutrVeww2SNOU9b2J62kV/QXEw7+N2I9klrvqqr9kdo1ywqFtZOnp8DlgR2+OhOnUYmj5YmJhmApPle9xnVVwZv57Q0REsmSAovHBLH4Kf3GEHPJ9WXEEnLINT9Gzit9qjIZ1fKKacLtvsZ+hbnTPvP5Df3ENalB+03E"}`)
	return [][]byte{{}, []byte("{}"), bytes.Repeat([]byte("a"), 15), bytes.Repeat([]byte("b"), 16), bytes.Repeat([]byte("c"), 17), session}
}

func TestBackupAgainstLibolm(t *testing.T) {
	for i := range 4 {
		priv := seq(byte(0x55+40*i), 32)
		k, err := backup.NewDecryptionKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := libolm.NewPKDecryption(append([]byte(nil), priv...))
		if err != nil {
			t.Fatal(err)
		}
		defer dec.Free()
		if dec.PublicKey() != k.PublicKey().String() {
			t.Fatalf("public keys differ: libolm %s, myelin %s", dec.PublicKey(), k.PublicKey())
		}
		enc, err := libolm.NewPKEncryption(k.PublicKey().String())
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Free()
		for j, pt := range backupPlaintexts() {
			random := seq(byte(0x77+13*j+i), 32)

			// myelin encrypts: byte-identical to libolm with the same random.
			sd, err := backup.Encrypt(bytes.NewReader(random), k.PublicKey(), pt)
			if err != nil {
				t.Fatal(err)
			}
			ct, mac, eph, err := enc.Encrypt(pt, append([]byte(nil), random...))
			if err != nil {
				t.Fatal(err)
			}
			if sd.Ciphertext != ct || sd.MAC != mac || sd.Ephemeral != eph {
				t.Fatalf("key %d pt %d: myelin %+v, libolm %s %s %s", i, j, sd, eph, ct, mac)
			}
			// myelin -> libolm.
			got, err := dec.Decrypt(sd.Ephemeral, sd.MAC, sd.Ciphertext)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("libolm cannot decrypt myelin's entry: %v", err)
			}
			// An MSC4048-authenticated entry is still a valid v1 entry for libolm.
			asd, err := backup.EncryptAuthenticated(bytes.NewReader(random), k.PublicKey(), k.MACKey(), backupOwner, pt)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := dec.Decrypt(asd.Ephemeral, asd.MAC, asd.Ciphertext); err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("libolm cannot decrypt myelin's authenticated entry: %v", err)
			}
			// libolm -> myelin (fresh random for libolm, so a different entry).
			ct, mac, eph, err = enc.Encrypt(pt, seq(byte(0x10+j), 32))
			if err != nil {
				t.Fatal(err)
			}
			d, err := k.Decrypt(backupOwner, &backup.SessionData{Ephemeral: eph, Ciphertext: ct, MAC: mac})
			if err != nil || !bytes.Equal(d.Plaintext, pt) || d.Provenance != backup.Unauthenticated {
				t.Fatalf("myelin cannot decrypt libolm's entry: %v", err)
			}
		}
	}
}

// TestBackupLibolmRefusesRealMAC: libolm checks the empty-string MAC, so the
// "correct" MAC over the ciphertext would break every libolm-based reader.
func TestBackupLibolmRefusesRealMAC(t *testing.T) {
	priv := seq(0x55, 32)
	k, _ := backup.NewDecryptionKey(priv)
	dec, err := libolm.NewPKDecryption(priv)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Free()
	sd, _ := backup.Encrypt(bytes.NewReader(seq(0x77, 32)), k.PublicKey(), []byte(`{"a":1}`))
	if _, err := dec.Decrypt(sd.Ephemeral, "AAAAAAAAAAA", sd.Ciphertext); err == nil {
		t.Fatal("libolm accepted a wrong MAC")
	}
}

func TestBackupAgainstMautrix(t *testing.T) {
	priv := seq(0x21, 32)
	k, _ := backup.NewDecryptionKey(priv)
	mk, err := mbackup.MegolmBackupKeyFromBytes(priv)
	if err != nil {
		t.Fatal(err)
	}
	if keys.EncodeBase64(mk.PublicKey().Bytes()) != k.PublicKey().String() {
		t.Fatal("public keys differ")
	}
	sent := mbackup.MegolmSessionData{
		Algorithm:          mid.AlgorithmMegolmV1,
		ForwardingKeyChain: []string{},
		SenderClaimedKeys:  mbackup.SenderClaimedKeys{Ed25519: "R2UJWSfgGr64iPENthl/98WGqBtnNlYuP12d6TEuGo4"},
		SenderKey:          "JUUfV6vErSATm3rIOU9DML+IX1SlYxnAAS824xhbhC4",
		SessionKey:         "AQAAAABc1O9JP2",
	}

	// mautrix -> myelin, through the JSON the server would store.
	for range 4 {
		esd, err := mbackup.EncryptSessionData(mk, sent)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(esd)
		if err != nil {
			t.Fatal(err)
		}
		sd, err := backup.ParseSessionData(raw)
		if err != nil {
			t.Fatal(err)
		}
		d, err := k.Decrypt(backupOwner, sd)
		if err != nil {
			t.Fatalf("myelin cannot decrypt mautrix's entry: %v", err)
		}
		var got mbackup.MegolmSessionData
		if err := json.Unmarshal(d.Plaintext, &got); err != nil || got.SessionKey != sent.SessionKey || got.SenderKey != sent.SenderKey {
			t.Fatalf("decrypted %s (%v)", d.Plaintext, err)
		}
	}

	// myelin -> mautrix, unauthenticated and authenticated (mautrix ignores
	// the MSC4048 field).
	pt, _ := json.Marshal(sent)
	for j, auth := range []bool{false, true} {
		var sd *backup.SessionData
		if auth {
			sd, err = backup.EncryptAuthenticated(bytes.NewReader(seq(byte(j), 32)), k.PublicKey(), k.MACKey(), backupOwner, pt)
		} else {
			sd, err = backup.Encrypt(bytes.NewReader(seq(byte(j), 32)), k.PublicKey(), pt)
		}
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(sd)
		var esd mbackup.EncryptedSessionData[mbackup.MegolmSessionData]
		if err := json.Unmarshal(raw, &esd); err != nil {
			t.Fatal(err)
		}
		got, err := esd.Decrypt(mk)
		if err != nil || got.SessionKey != sent.SessionKey {
			t.Fatalf("authenticated=%v: mautrix cannot decrypt myelin's entry: %v", auth, err)
		}
	}
}

func BenchmarkBackupEncrypt(b *testing.B) {
	pt := backupPlaintexts()[5]
	priv := seq(0x55, 32)
	k, _ := backup.NewDecryptionKey(priv)
	b.Run("impl=myelin", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(pt)))
		r := bytes.NewReader(nil)
		rnd := seq(0x77, 32)
		for b.Loop() {
			r.Reset(rnd)
			if _, err := backup.Encrypt(r, k.PublicKey(), pt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=libolm", func(b *testing.B) {
		enc, err := libolm.NewPKEncryption(k.PublicKey().String())
		if err != nil {
			b.Fatal(err)
		}
		defer enc.Free()
		b.ReportAllocs()
		b.SetBytes(int64(len(pt)))
		for b.Loop() {
			if _, _, _, err := enc.Encrypt(pt, seq(0x77, 32)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=mautrix", func(b *testing.B) {
		pub, _ := ecdh.X25519().NewPublicKey(k.PublicKey().Bytes())
		var sd json.RawMessage = pt
		b.ReportAllocs()
		b.SetBytes(int64(len(pt)))
		for b.Loop() {
			if _, err := mbackup.EncryptSessionDataWithPubkey(pub, sd); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkBackupDecrypt(b *testing.B) {
	pt := backupPlaintexts()[5]
	priv := seq(0x55, 32)
	k, _ := backup.NewDecryptionKey(priv)
	sd, _ := backup.Encrypt(bytes.NewReader(seq(0x77, 32)), k.PublicKey(), pt)
	asd, _ := backup.EncryptAuthenticated(bytes.NewReader(seq(0x77, 32)), k.PublicKey(), k.MACKey(), backupOwner, pt)
	for _, c := range []struct {
		name string
		sd   *backup.SessionData
	}{{"impl=myelin", sd}, {"impl=myelin-msc4048", asd}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(pt)))
			for b.Loop() {
				if _, err := k.Decrypt(backupOwner, c.sd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("impl=libolm", func(b *testing.B) {
		dec, err := libolm.NewPKDecryption(append([]byte(nil), priv...))
		if err != nil {
			b.Fatal(err)
		}
		defer dec.Free()
		b.ReportAllocs()
		b.SetBytes(int64(len(pt)))
		for b.Loop() {
			if _, err := dec.Decrypt(sd.Ephemeral, sd.MAC, sd.Ciphertext); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=mautrix", func(b *testing.B) {
		mk, _ := mbackup.MegolmBackupKeyFromBytes(priv)
		raw, _ := json.Marshal(sd)
		var esd mbackup.EncryptedSessionData[json.RawMessage]
		if err := json.Unmarshal(raw, &esd); err != nil {
			b.Fatal(err)
		}
		// mautrix decrypts the ciphertext in place: give each round a copy.
		buf := make([]byte, len(esd.Ciphertext))
		b.ReportAllocs()
		b.SetBytes(int64(len(pt)))
		for b.Loop() {
			e := esd
			e.Ciphertext = append(buf[:0], esd.Ciphertext...)
			if _, err := e.Decrypt(mk); err != nil {
				b.Fatal(fmt.Errorf("mautrix: %w", err))
			}
		}
	})
}
