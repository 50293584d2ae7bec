package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"myelin/server/storage"
)

// The E2EE tables (migrations/0100_e2ee.sql) store client JSON as received.
// Batches (claims of many devices, to-device fan-out, key queries) are single
// statements over a JSON array parameter expanded with json_each, so their
// cost does not grow with a statement per item.

var _ storage.E2EE = (*Store)(nil)

// txnRetention is how long a sendToDevice transaction ID is remembered.
const txnRetention = 7 * 24 * time.Hour

// RegisterE2EEHooks installs the device-deletion hook of the E2EE tables:
// deleting a device deletes its keys, its queued to-device messages and the
// signatures on it, and records a device-list change, in the same
// transaction. Call it once per Store (running the hook twice is harmless).
func (s *Store) RegisterE2EEHooks() { s.OnDeviceDelete(s.deleteE2EEDevices) }

func (s *Store) deleteE2EEDevices(t *Tx, userID string, deviceIDs []string) error {
	ids, err := json.Marshal(deviceIDs)
	if err != nil {
		return err
	}
	t.keysWritten()
	for _, q := range []string{
		`DELETE FROM e2ee_device_keys WHERE user_id=? AND device_id IN (SELECT value FROM json_each(?))`,
		`DELETE FROM e2ee_otk WHERE user_id=? AND device_id IN (SELECT value FROM json_each(?))`,
		`DELETE FROM e2ee_fallback_keys WHERE user_id=? AND device_id IN (SELECT value FROM json_each(?))`,
		`DELETE FROM e2ee_to_device WHERE user_id=? AND device_id IN (SELECT value FROM json_each(?))`,
		`DELETE FROM e2ee_key_signatures WHERE target_user_id=? AND target_key_id IN (SELECT value FROM json_each(?))`,
	} {
		if _, err := t.Exec(q, userID, string(ids)); err != nil {
			return fmt.Errorf("sqlite: delete device e2ee data: %w", err)
		}
	}
	if _, err := recordChange(t, userID, false); err != nil {
		return err
	}
	// Everyone sharing a room with the user must re-query their devices.
	rows, err := t.Query(`SELECT DISTINCT o.state_key FROM room_state me JOIN room_state o
		ON o.room_id=me.room_id AND o.type='m.room.member' AND o.membership IN ('join','invite')
		WHERE me.type='m.room.member' AND me.state_key=? AND me.membership='join'`, userID)
	if err != nil {
		return fmt.Errorf("sqlite: users sharing rooms: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return err
		}
		t.Wake(u)
	}
	t.Wake(userID)
	return rows.Err()
}

func recordChange(t *Tx, userID string, selfOnly bool) (storage.DeviceListChange, error) {
	c := storage.DeviceListChange{UserID: userID, Pos: t.NextPos(), SelfOnly: selfOnly}
	t.s.hints.noteDeviceList(c.Pos)
	if _, err := t.Exec(`INSERT INTO e2ee_device_list_changes(stream_pos, user_id, self_only) VALUES(?,?,?)`,
		c.Pos, userID, boolInt(selfOnly)); err != nil {
		return c, fmt.Errorf("sqlite: record device-list change: %w", err)
	}
	return c, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// UploadKeys implements storage.E2EE.
func (s *Store) UploadKeys(ctx context.Context, u storage.KeyUpload) (map[string]int, []storage.DeviceListChange, error) {
	var counts map[string]int
	var changes []storage.DeviceListChange
	err := s.Write(ctx, func(t *Tx) error {
		counts, changes = nil, nil
		t.keysWritten()
		if u.DeviceKeys != nil {
			var old string
			err := t.QueryRow(`SELECT key_json FROM e2ee_device_keys WHERE user_id=? AND device_id=?`, u.UserID, u.DeviceID).Scan(&old)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlite: read device keys: %w", err)
			}
			if old != string(u.DeviceKeys) {
				if _, err := t.Exec(`INSERT INTO e2ee_device_keys(user_id, device_id, key_json) VALUES(?,?,?)
					ON CONFLICT(user_id, device_id) DO UPDATE SET key_json=excluded.key_json`,
					u.UserID, u.DeviceID, string(u.DeviceKeys)); err != nil {
					return fmt.Errorf("sqlite: store device keys: %w", err)
				}
				c, err := recordChange(t, u.UserID, false)
				if err != nil {
					return err
				}
				changes = append(changes, c)
			}
		}
		if err := putOneTimeKeys(t, u); err != nil {
			return err
		}
		for _, k := range u.FallbackKeys {
			var oldID, oldJSON string
			err := t.QueryRow(`SELECT key_id, key_json FROM e2ee_fallback_keys WHERE user_id=? AND device_id=? AND algorithm=?`,
				u.UserID, u.DeviceID, k.Algorithm).Scan(&oldID, &oldJSON)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlite: read fallback key: %w", err)
			}
			if err == nil && oldID == k.KeyID && oldJSON == string(k.JSON) {
				continue // identical re-upload: keep its used flag
			}
			if _, err := t.Exec(`INSERT INTO e2ee_fallback_keys(user_id, device_id, algorithm, key_id, key_json, used) VALUES(?,?,?,?,?,0)
				ON CONFLICT(user_id, device_id, algorithm) DO UPDATE SET key_id=excluded.key_id, key_json=excluded.key_json, used=0`,
				u.UserID, u.DeviceID, k.Algorithm, k.KeyID, string(k.JSON)); err != nil {
				return fmt.Errorf("sqlite: store fallback key: %w", err)
			}
		}
		var err error
		counts, err = otkCounts(t.tx, u.UserID, u.DeviceID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return counts, changes, nil
}

func otkCounts(q interface {
	Query(q string, args ...any) (*sql.Rows, error)
}, userID, deviceID string) (map[string]int, error) {
	rows, err := q.Query(`SELECT algorithm, COUNT(*) FROM e2ee_otk WHERE user_id=? AND device_id=? GROUP BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: count one-time keys: %w", err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var alg string
		var n int
		if err := rows.Scan(&alg, &n); err != nil {
			return nil, err
		}
		counts[alg] = n
	}
	return counts, rows.Err()
}

// DeviceKeys implements storage.E2EE.
func (s *Store) DeviceKeys(ctx context.Context, query map[string][]string) ([]storage.DeviceKeys, error) {
	var all []string
	var pairs [][2]string
	for u, devs := range query {
		if len(devs) == 0 {
			all = append(all, u)
			continue
		}
		for _, d := range devs {
			pairs = append(pairs, [2]string{u, d})
		}
	}
	var out []storage.DeviceKeys
	scan := func(rows *sql.Rows, err error) error {
		if err != nil {
			return fmt.Errorf("sqlite: query device keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var dk storage.DeviceKeys
			var js string
			if err := rows.Scan(&dk.UserID, &dk.DeviceID, &js, &dk.DisplayName); err != nil {
				return err
			}
			dk.JSON = json.RawMessage(js)
			out = append(out, dk)
		}
		return rows.Err()
	}
	// Keys of devices that no longer exist are never served (the join with
	// devices), even if a deletion hook was missed.
	if len(all) > 0 {
		b, _ := json.Marshal(all)
		if err := scan(s.rq.QueryContext(ctx, `SELECT k.user_id, k.device_id, k.key_json, d.display_name
			FROM e2ee_device_keys k JOIN devices d ON d.user_id=k.user_id AND d.device_id=k.device_id
			WHERE k.user_id IN (SELECT value FROM json_each(?)) ORDER BY k.user_id, k.device_id`, string(b))); err != nil {
			return nil, err
		}
	}
	if len(pairs) > 0 {
		b, _ := json.Marshal(pairs)
		if err := scan(s.rq.QueryContext(ctx, `SELECT k.user_id, k.device_id, k.key_json, d.display_name
			FROM json_each(?) j
			JOIN e2ee_device_keys k ON k.user_id=json_extract(j.value, '$[0]') AND k.device_id=json_extract(j.value, '$[1]')
			JOIN devices d ON d.user_id=k.user_id AND d.device_id=k.device_id
			ORDER BY k.user_id, k.device_id`, string(b))); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// OneTimeKeyCounts implements storage.E2EE.
func (s *Store) OneTimeKeyCounts(ctx context.Context, userID, deviceID string) (map[string]int, error) {
	return otkCounts(ctxQuerier{ctx, s.rq}, userID, deviceID)
}

// putOneTimeKeys stores new one-time keys after the device's existing ones
// (seq orders claims by upload). A key ID already stored with the same
// content is skipped; with other content it is ErrKeyConflict.
func putOneTimeKeys(t *Tx, u storage.KeyUpload) error {
	byAlg := map[string][]storage.OneTimeKey{}
	var algs []string
	for _, k := range u.OneTimeKeys {
		if byAlg[k.Algorithm] == nil {
			algs = append(algs, k.Algorithm)
		}
		byAlg[k.Algorithm] = append(byAlg[k.Algorithm], k)
	}
	for _, alg := range algs {
		existing := map[string]string{}
		var seq int64
		rows, err := t.Query(`SELECT seq, key_id, key_json FROM e2ee_otk WHERE user_id=? AND device_id=? AND algorithm=?`,
			u.UserID, u.DeviceID, alg)
		if err != nil {
			return fmt.Errorf("sqlite: read one-time keys: %w", err)
		}
		for rows.Next() {
			var sq int64
			var id, js string
			if err := rows.Scan(&sq, &id, &js); err != nil {
				rows.Close()
				return err
			}
			seq = max(seq, sq)
			existing[id] = js
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, k := range byAlg[alg] {
			if old, ok := existing[k.KeyID]; ok {
				if old != string(k.JSON) {
					return storage.ErrKeyConflict
				}
				continue
			}
			seq++
			existing[k.KeyID] = string(k.JSON)
			if _, err := t.Exec(`INSERT INTO e2ee_otk(user_id, device_id, algorithm, seq, key_id, key_json) VALUES(?,?,?,?,?,?)`,
				u.UserID, u.DeviceID, alg, seq, k.KeyID, string(k.JSON)); err != nil {
				return fmt.Errorf("sqlite: store one-time key: %w", err)
			}
		}
	}
	return nil
}

type ctxQuerier struct {
	ctx context.Context
	db  interface {
		QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	}
}

func (c ctxQuerier) Query(q string, args ...any) (*sql.Rows, error) {
	return c.db.QueryContext(c.ctx, q, args...)
}

// UnusedFallbackKeyTypes implements storage.E2EE.
func (s *Store) UnusedFallbackKeyTypes(ctx context.Context, userID, deviceID string) ([]string, error) {
	rows, err := s.rq.QueryContext(ctx, `SELECT algorithm FROM e2ee_fallback_keys WHERE user_id=? AND device_id=? AND used=0 ORDER BY algorithm`, userID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: fallback key types: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ClaimKeys implements storage.E2EE: one DELETE ... RETURNING takes the
// oldest one-time key of every requested device, one UPDATE ... RETURNING
// marks the fallback keys of the devices left without one, in one
// transaction of the single writer (so no key is ever handed out twice).
func (s *Store) ClaimKeys(ctx context.Context, claims []storage.KeyClaim) ([]storage.ClaimedKey, error) {
	arr := make([][3]string, len(claims))
	for i, c := range claims {
		arr[i] = [3]string{c.UserID, c.DeviceID, c.Algorithm}
	}
	param, err := json.Marshal(arr)
	if err != nil {
		return nil, err
	}
	var out []storage.ClaimedKey
	err = s.Write(ctx, func(t *Tx) error {
		out = out[:0]
		t.keysWritten()
		got := make(map[[3]string]bool, len(claims))
		rows, err := t.Query(`DELETE FROM e2ee_otk WHERE (user_id, device_id, algorithm, seq) IN (
				SELECT u, d, a, (SELECT MIN(o.seq) FROM e2ee_otk o WHERE o.user_id=u AND o.device_id=d AND o.algorithm=a)
				FROM (SELECT json_extract(value, '$[0]') AS u, json_extract(value, '$[1]') AS d, json_extract(value, '$[2]') AS a
					FROM json_each(?)))
			RETURNING user_id, device_id, algorithm, key_id, key_json`, string(param))
		if err != nil {
			return fmt.Errorf("sqlite: claim one-time keys: %w", err)
		}
		for rows.Next() {
			var k storage.ClaimedKey
			var js string
			if err := rows.Scan(&k.UserID, &k.DeviceID, &k.Algorithm, &k.KeyID, &js); err != nil {
				rows.Close()
				return err
			}
			k.JSON = json.RawMessage(js)
			got[[3]string{k.UserID, k.DeviceID, k.Algorithm}] = true
			out = append(out, k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var rest [][3]string
		for _, a := range arr {
			if !got[a] {
				rest = append(rest, a)
			}
		}
		if len(rest) == 0 {
			return nil
		}
		rp, _ := json.Marshal(rest)
		rows, err = t.Query(`UPDATE e2ee_fallback_keys SET used=1
			WHERE (user_id, device_id, algorithm) IN (
				SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]') FROM json_each(?))
			RETURNING user_id, device_id, algorithm, key_id, key_json`, string(rp))
		if err != nil {
			return fmt.Errorf("sqlite: claim fallback keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			k := storage.ClaimedKey{Fallback: true}
			var js string
			if err := rows.Scan(&k.UserID, &k.DeviceID, &k.Algorithm, &k.KeyID, &js); err != nil {
				return err
			}
			k.JSON = json.RawMessage(js)
			out = append(out, k)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CrossSigningKeys implements storage.E2EE.
func (s *Store) CrossSigningKeys(ctx context.Context, userIDs []string) ([]storage.CrossSigningKey, error) {
	b, _ := json.Marshal(userIDs)
	rows, err := s.rq.QueryContext(ctx, `SELECT user_id, usage, public_key, key_json FROM e2ee_cross_signing_keys
		WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY user_id, usage`, string(b))
	if err != nil {
		return nil, fmt.Errorf("sqlite: cross-signing keys: %w", err)
	}
	defer rows.Close()
	var out []storage.CrossSigningKey
	for rows.Next() {
		var k storage.CrossSigningKey
		var js string
		if err := rows.Scan(&k.UserID, &k.Usage, &k.PublicKey, &js); err != nil {
			return nil, err
		}
		k.JSON = json.RawMessage(js)
		out = append(out, k)
	}
	return out, rows.Err()
}

// PutCrossSigningKeys implements storage.E2EE.
func (s *Store) PutCrossSigningKeys(ctx context.Context, userID string, keys []storage.CrossSigningKey) ([]storage.DeviceListChange, error) {
	var changes []storage.DeviceListChange
	err := s.Write(ctx, func(t *Tx) error {
		changes = nil
		public, private := false, false
		for _, k := range keys {
			var oldPub, oldJSON string
			err := t.QueryRow(`SELECT public_key, key_json FROM e2ee_cross_signing_keys WHERE user_id=? AND usage=?`, userID, k.Usage).Scan(&oldPub, &oldJSON)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("sqlite: read cross-signing key: %w", err)
			}
			if err == nil && oldJSON == string(k.JSON) {
				continue
			}
			if _, err := t.Exec(`INSERT INTO e2ee_cross_signing_keys(user_id, usage, public_key, key_json) VALUES(?,?,?,?)
				ON CONFLICT(user_id, usage) DO UPDATE SET public_key=excluded.public_key, key_json=excluded.key_json`,
				userID, k.Usage, k.PublicKey, string(k.JSON)); err != nil {
				return fmt.Errorf("sqlite: store cross-signing key: %w", err)
			}
			if oldPub != "" && oldPub != k.PublicKey {
				// Signatures on a replaced key belong to the old key.
				if _, err := t.Exec(`DELETE FROM e2ee_key_signatures WHERE target_user_id=? AND target_key_id=?`, userID, oldPub); err != nil {
					return fmt.Errorf("sqlite: drop old signatures: %w", err)
				}
			}
			if k.Usage == storage.UsageUserSigning {
				private = true
			} else {
				public = true
			}
		}
		if public || private {
			c, err := recordChange(t, userID, !public)
			if err != nil {
				return err
			}
			changes = append(changes, c)
		}
		return nil
	})
	return changes, err
}

// Signatures implements storage.E2EE.
func (s *Store) Signatures(ctx context.Context, targetUserIDs []string) ([]storage.KeySignature, error) {
	b, _ := json.Marshal(targetUserIDs)
	rows, err := s.rq.QueryContext(ctx, `SELECT target_user_id, target_key_id, signer_user_id, signer_key_id, signature
		FROM e2ee_key_signatures WHERE target_user_id IN (SELECT value FROM json_each(?))
		ORDER BY target_user_id, target_key_id, signer_user_id, signer_key_id`, string(b))
	if err != nil {
		return nil, fmt.Errorf("sqlite: signatures: %w", err)
	}
	defer rows.Close()
	var out []storage.KeySignature
	for rows.Next() {
		var k storage.KeySignature
		if err := rows.Scan(&k.TargetUserID, &k.TargetKeyID, &k.SignerUserID, &k.SignerKeyID, &k.Signature); err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// PutSignatures implements storage.E2EE.
func (s *Store) PutSignatures(ctx context.Context, sigs []storage.KeySignature) ([]storage.DeviceListChange, error) {
	var changes []storage.DeviceListChange
	err := s.Write(ctx, func(t *Tx) error {
		changes = nil
		type who struct {
			user     string
			selfOnly bool
		}
		seen := map[who]bool{}
		var order []who
		for _, sg := range sigs {
			if _, err := t.Exec(`INSERT INTO e2ee_key_signatures(target_user_id, target_key_id, signer_user_id, signer_key_id, signature)
				VALUES(?,?,?,?,?) ON CONFLICT DO UPDATE SET signature=excluded.signature`,
				sg.TargetUserID, sg.TargetKeyID, sg.SignerUserID, sg.SignerKeyID, sg.Signature); err != nil {
				return fmt.Errorf("sqlite: store signature: %w", err)
			}
			w := who{sg.TargetUserID, false}
			if sg.SignerUserID != sg.TargetUserID {
				w = who{sg.SignerUserID, true}
			}
			if !seen[w] {
				seen[w] = true
				order = append(order, w)
			}
		}
		for _, w := range order {
			c, err := recordChange(t, w.user, w.selfOnly)
			if err != nil {
				return err
			}
			changes = append(changes, c)
		}
		return nil
	})
	return changes, err
}

// DeviceListChanges implements storage.E2EE.
func (s *Store) DeviceListChanges(ctx context.Context, from, to int64) ([]storage.DeviceListChange, error) {
	if from >= to || !s.hints.deviceListsMoved(from) {
		return nil, nil
	}
	rows, err := s.rq.QueryContext(ctx, `SELECT stream_pos, user_id, self_only FROM e2ee_device_list_changes
		WHERE stream_pos > ? AND stream_pos <= ? ORDER BY stream_pos`, from, to)
	if err != nil {
		return nil, fmt.Errorf("sqlite: device-list changes: %w", err)
	}
	defer rows.Close()
	var out []storage.DeviceListChange
	for rows.Next() {
		var c storage.DeviceListChange
		var self int
		if err := rows.Scan(&c.Pos, &c.UserID, &self); err != nil {
			return nil, err
		}
		c.SelfOnly = self != 0
		out = append(out, c)
	}
	return out, rows.Err()
}

// RecordDeviceListChange implements storage.E2EE.
func (s *Store) RecordDeviceListChange(ctx context.Context, userID string) (int64, error) {
	var pos int64
	err := s.Write(ctx, func(t *Tx) error {
		c, err := recordChange(t, userID, false)
		pos = c.Pos
		return err
	})
	return pos, err
}

// SendToDevice implements storage.E2EE: the transaction record and every
// message go in with two statements, whatever the number of targets; "*" is
// expanded against the devices table in the same statement.
func (s *Store) SendToDevice(ctx context.Context, m storage.ToDeviceSend) (int64, error) {
	arr := make([][3]string, len(m.Messages))
	users := make([]string, 0, len(m.Messages))
	seen := map[string]bool{}
	for i, msg := range m.Messages {
		arr[i] = [3]string{msg.UserID, msg.DeviceID, string(msg.Content)}
		if !seen[msg.UserID] {
			seen[msg.UserID] = true
			users = append(users, msg.UserID)
		}
	}
	param, err := json.Marshal(arr)
	if err != nil {
		return 0, err
	}
	var pos int64
	err = s.Write(ctx, func(t *Tx) error {
		now := time.Now().UnixMilli()
		// Transaction records are kept for a week (clients retry within
		// minutes); pruning per sending device keeps the table small.
		if _, err := t.Exec(`DELETE FROM e2ee_to_device_txns WHERE user_id=? AND device_id=? AND created_ts<?`,
			m.Sender, m.SenderDevice, now-txnRetention.Milliseconds()); err != nil {
			return fmt.Errorf("sqlite: prune to-device txns: %w", err)
		}
		res, err := t.Exec(`INSERT INTO e2ee_to_device_txns(user_id, device_id, txn_id, created_ts) VALUES(?,?,?,?)
			ON CONFLICT DO NOTHING`, m.Sender, m.SenderDevice, m.TxnID, now)
		if err != nil {
			return fmt.Errorf("sqlite: record to-device txn: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return storage.ErrDuplicateTxn
		}
		pos = t.NextPos()
		if len(arr) == 0 {
			return nil
		}
		// The CTE is materialised so that each message is parsed once, not
		// once per candidate device row of the join.
		if _, err := t.Exec(`WITH j AS MATERIALIZED (
				SELECT key AS k, json_extract(value, '$[0]') AS u, json_extract(value, '$[1]') AS dv,
					json_extract(value, '$[2]') AS c FROM json_each(?4))
			INSERT INTO e2ee_to_device(user_id, device_id, stream_pos, sender, type, content)
			SELECT d.user_id, d.device_id, ?1, ?2, ?3, j.c
			FROM j JOIN devices d ON d.user_id=j.u AND (j.dv='*' OR d.device_id=j.dv)
			ORDER BY j.k, d.device_id`, pos, m.Sender, m.Type, string(param)); err != nil {
			return fmt.Errorf("sqlite: queue to-device messages: %w", err)
		}
		t.Wake(users...)
		return nil
	})
	return pos, err
}

// ToDevice implements storage.E2EE.
func (s *Store) ToDevice(ctx context.Context, userID, deviceID string, ack int64, limit int) ([]storage.ToDeviceEvent, error) {
	st, err := s.DeviceSyncState(ctx, userID, deviceID, ack, limit)
	if err != nil {
		return nil, err
	}
	if st.AckPending {
		if err := s.AckToDevice(ctx, userID, deviceID, ack); err != nil {
			return nil, fmt.Errorf("sqlite: acknowledge to-device: %w", err)
		}
	}
	return st.ToDevice, nil
}

// DeviceSyncState implements storage.E2EE.
func (s *Store) DeviceSyncState(ctx context.Context, userID, deviceID string, ack int64, limit int) (storage.DeviceSyncState, error) {
	st := storage.DeviceSyncState{OneTimeKeyCounts: map[string]int{}, UnusedFallbackKeyTypes: []string{}}
	cached, ok, gen := s.hints.cachedKeys(userID, deviceID)
	if ok {
		// Key counts unchanged since cached: read only the to-device queue.
		cached.copyTo(&st)
		rows, err := s.rq.QueryContext(ctx, `SELECT 0, id, stream_pos, sender, type, content FROM (
				SELECT id, stream_pos, sender, type, content FROM e2ee_to_device
				WHERE user_id=?1 AND device_id=?2 AND id>?3 ORDER BY id LIMIT ?4)
			UNION ALL SELECT 3, 0, 0, '', '', '' WHERE EXISTS (
				SELECT 1 FROM e2ee_to_device WHERE user_id=?1 AND device_id=?2 AND id<=?3)`, userID, deviceID, ack, limit)
		if err != nil {
			return st, fmt.Errorf("sqlite: device sync state: %w", err)
		}
		defer rows.Close()
		return st, scanDeviceSyncState(rows, &st)
	}
	rows, err := s.rq.QueryContext(ctx, `SELECT 0, id, stream_pos, sender, type, content FROM (
			SELECT id, stream_pos, sender, type, content FROM e2ee_to_device
			WHERE user_id=?1 AND device_id=?2 AND id>?3 ORDER BY id LIMIT ?4)
		UNION ALL SELECT 1, COUNT(*), 0, algorithm, '', '' FROM e2ee_otk WHERE user_id=?1 AND device_id=?2 GROUP BY algorithm
		UNION ALL SELECT 2, 0, 0, algorithm, '', '' FROM e2ee_fallback_keys WHERE user_id=?1 AND device_id=?2 AND used=0
		UNION ALL SELECT 3, 0, 0, '', '', '' WHERE EXISTS (
			SELECT 1 FROM e2ee_to_device WHERE user_id=?1 AND device_id=?2 AND id<=?3)`, userID, deviceID, ack, limit)
	if err != nil {
		return st, fmt.Errorf("sqlite: device sync state: %w", err)
	}
	defer rows.Close()
	if err := scanDeviceSyncState(rows, &st); err != nil {
		return st, err
	}
	s.hints.storeKeys(userID, deviceID, gen, deviceKeyState{otk: maps.Clone(st.OneTimeKeyCounts),
		fallback: append([]string{}, st.UnusedFallbackKeyTypes...)})
	return st, nil
}

// scanDeviceSyncState reads the rows of the DeviceSyncState queries into st.
func scanDeviceSyncState(rows *sql.Rows, st *storage.DeviceSyncState) error {
	for rows.Next() {
		var kind int
		var e storage.ToDeviceEvent
		var a, b, c string
		if err := rows.Scan(&kind, &e.ID, &e.Pos, &a, &b, &c); err != nil {
			return err
		}
		switch kind {
		case 0:
			e.Sender, e.Type, e.Content = a, b, json.RawMessage(c)
			st.ToDevice = append(st.ToDevice, e)
		case 1:
			st.OneTimeKeyCounts[a] = int(e.ID)
		case 2:
			st.UnusedFallbackKeyTypes = append(st.UnusedFallbackKeyTypes, a)
		case 3:
			st.AckPending = true
		}
	}
	return rows.Err()
}

// AckToDevice implements storage.E2EE.
func (s *Store) AckToDevice(ctx context.Context, userID, deviceID string, ack int64) error {
	return s.Write(ctx, func(t *Tx) error {
		_, err := t.Exec(`DELETE FROM e2ee_to_device WHERE user_id=? AND device_id=? AND id<=?`, userID, deviceID, ack)
		return err
	})
}

// HasToDevice implements storage.E2EE.
func (s *Store) HasToDevice(ctx context.Context, userID, deviceID string, ack int64) (bool, error) {
	var one int
	err := s.rq.QueryRowContext(ctx, `SELECT 1 FROM e2ee_to_device WHERE user_id=? AND device_id=? AND id>? LIMIT 1`,
		userID, deviceID, ack).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// ---- key backup ----

func parseVersion(v string) (int64, bool) {
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n > 0 && strconv.FormatInt(n, 10) == v
}

// CreateBackupVersion implements storage.E2EE.
func (s *Store) CreateBackupVersion(ctx context.Context, userID, algorithm string, authData json.RawMessage) (string, error) {
	var v int64
	err := s.Write(ctx, func(t *Tx) error {
		if err := t.QueryRow(`SELECT COALESCE(MAX(version), 0) + 1 FROM e2ee_backup_versions WHERE user_id=?`, userID).Scan(&v); err != nil {
			return fmt.Errorf("sqlite: next backup version: %w", err)
		}
		_, err := t.Exec(`INSERT INTO e2ee_backup_versions(user_id, version, algorithm, auth_data) VALUES(?,?,?,?)`,
			userID, v, algorithm, string(authData))
		return err
	})
	if err != nil {
		return "", err
	}
	return strconv.FormatInt(v, 10), nil
}

// BackupVersion implements storage.E2EE.
func (s *Store) BackupVersion(ctx context.Context, userID, version string) (storage.BackupVersion, error) {
	b := storage.BackupVersion{UserID: userID}
	var row *sql.Row
	if version == "" {
		row = s.rq.QueryRowContext(ctx, `SELECT version, algorithm, auth_data, etag, deleted FROM e2ee_backup_versions
			WHERE user_id=? AND deleted=0 ORDER BY version DESC LIMIT 1`, userID)
	} else {
		n, ok := parseVersion(version)
		if !ok {
			return b, storage.ErrNotFound
		}
		row = s.rq.QueryRowContext(ctx, `SELECT version, algorithm, auth_data, etag, deleted FROM e2ee_backup_versions
			WHERE user_id=? AND version=?`, userID, n)
	}
	var v, etag int64
	var deleted int
	var ad string
	if err := row.Scan(&v, &b.Algorithm, &ad, &etag, &deleted); err != nil {
		return b, notFound(err)
	}
	b.Version, b.AuthData, b.ETag, b.Deleted = strconv.FormatInt(v, 10), json.RawMessage(ad), strconv.FormatInt(etag, 10), deleted != 0
	if err := s.rq.QueryRowContext(ctx, `SELECT COUNT(*) FROM e2ee_backup_keys WHERE user_id=? AND version=?`, userID, v).Scan(&b.Count); err != nil {
		return b, fmt.Errorf("sqlite: count backup keys: %w", err)
	}
	return b, nil
}

// UpdateBackupVersion implements storage.E2EE.
func (s *Store) UpdateBackupVersion(ctx context.Context, userID, version string, authData json.RawMessage) error {
	n, ok := parseVersion(version)
	if !ok {
		return storage.ErrNotFound
	}
	return s.Write(ctx, func(t *Tx) error {
		res, err := t.Exec(`UPDATE e2ee_backup_versions SET auth_data=? WHERE user_id=? AND version=? AND deleted=0`, string(authData), userID, n)
		return affected(res, err)
	})
}

// DeleteBackupVersion implements storage.E2EE.
func (s *Store) DeleteBackupVersion(ctx context.Context, userID, version string) error {
	n, ok := parseVersion(version)
	if !ok {
		return storage.ErrNotFound
	}
	return s.Write(ctx, func(t *Tx) error {
		res, err := t.Exec(`UPDATE e2ee_backup_versions SET deleted=1 WHERE user_id=? AND version=?`, userID, n)
		if err := affected(res, err); err != nil {
			return err
		}
		_, err = t.Exec(`DELETE FROM e2ee_backup_keys WHERE user_id=? AND version=?`, userID, n)
		return err
	})
}

// liveVersion checks that version exists and is not deleted.
func liveVersion(t *Tx, userID string, n int64) error {
	var deleted int
	if err := t.QueryRow(`SELECT deleted FROM e2ee_backup_versions WHERE user_id=? AND version=?`, userID, n).Scan(&deleted); err != nil {
		return notFound(err)
	}
	if deleted != 0 {
		return storage.ErrNotFound
	}
	return nil
}

func backupCount(t *Tx, userID string, n int64) (storage.BackupCount, error) {
	var c storage.BackupCount
	var etag int64
	if err := t.QueryRow(`SELECT etag, (SELECT COUNT(*) FROM e2ee_backup_keys WHERE user_id=? AND version=?)
		FROM e2ee_backup_versions WHERE user_id=? AND version=?`, userID, n, userID, n).Scan(&etag, &c.Count); err != nil {
		return c, fmt.Errorf("sqlite: backup count: %w", err)
	}
	c.ETag = strconv.FormatInt(etag, 10)
	return c, nil
}

// PutBackupKeys implements storage.E2EE.
func (s *Store) PutBackupKeys(ctx context.Context, userID, version string, keys []storage.BackupKey) (storage.BackupCount, error) {
	var out storage.BackupCount
	err := s.Write(ctx, func(t *Tx) error {
		var cur int64
		err := t.QueryRow(`SELECT version FROM e2ee_backup_versions WHERE user_id=? AND deleted=0 ORDER BY version DESC LIMIT 1`, userID).Scan(&cur)
		if err != nil {
			return notFound(err)
		}
		n, ok := parseVersion(version)
		if !ok || n != cur {
			return &storage.WrongBackupVersionError{Current: strconv.FormatInt(cur, 10)}
		}
		changed := false
		for _, k := range keys {
			var old storage.BackupKey
			var verified int
			err := t.QueryRow(`SELECT first_message_index, forwarded_count, is_verified FROM e2ee_backup_keys
				WHERE user_id=? AND version=? AND room_id=? AND session_id=?`, userID, n, k.RoomID, k.SessionID).
				Scan(&old.FirstMessageIndex, &old.ForwardedCount, &verified)
			old.IsVerified = verified != 0
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return fmt.Errorf("sqlite: read backup key: %w", err)
			case !storage.ReplaceBackupKey(old, k):
				continue
			}
			if _, err := t.Exec(`INSERT INTO e2ee_backup_keys(user_id, version, room_id, session_id, first_message_index,
				forwarded_count, is_verified, session_data) VALUES(?,?,?,?,?,?,?,?)
				ON CONFLICT(user_id, version, room_id, session_id) DO UPDATE SET first_message_index=excluded.first_message_index,
				forwarded_count=excluded.forwarded_count, is_verified=excluded.is_verified, session_data=excluded.session_data`,
				userID, n, k.RoomID, k.SessionID, k.FirstMessageIndex, k.ForwardedCount, boolInt(k.IsVerified), string(k.SessionData)); err != nil {
				return fmt.Errorf("sqlite: store backup key: %w", err)
			}
			changed = true
		}
		if changed {
			if _, err := t.Exec(`UPDATE e2ee_backup_versions SET etag=etag+1 WHERE user_id=? AND version=?`, userID, n); err != nil {
				return err
			}
		}
		out, err = backupCount(t, userID, n)
		return err
	})
	return out, err
}

// BackupKeys implements storage.E2EE.
func (s *Store) BackupKeys(ctx context.Context, userID, version, roomID, sessionID string) ([]storage.BackupKey, error) {
	n, ok := parseVersion(version)
	if !ok {
		return nil, storage.ErrNotFound
	}
	var deleted int
	if err := s.rq.QueryRowContext(ctx, `SELECT deleted FROM e2ee_backup_versions WHERE user_id=? AND version=?`, userID, n).Scan(&deleted); err != nil {
		return nil, notFound(err)
	}
	if deleted != 0 {
		return nil, storage.ErrNotFound
	}
	rows, err := s.rq.QueryContext(ctx, `SELECT room_id, session_id, first_message_index, forwarded_count, is_verified, session_data
		FROM e2ee_backup_keys WHERE user_id=? AND version=? AND (?='' OR room_id=?) AND (?='' OR session_id=?)
		ORDER BY room_id, session_id`, userID, n, roomID, roomID, sessionID, sessionID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: backup keys: %w", err)
	}
	defer rows.Close()
	var out []storage.BackupKey
	for rows.Next() {
		var k storage.BackupKey
		var verified int
		var sd string
		if err := rows.Scan(&k.RoomID, &k.SessionID, &k.FirstMessageIndex, &k.ForwardedCount, &verified, &sd); err != nil {
			return nil, err
		}
		k.IsVerified, k.SessionData = verified != 0, json.RawMessage(sd)
		out = append(out, k)
	}
	return out, rows.Err()
}

// DeleteBackupKeys implements storage.E2EE.
func (s *Store) DeleteBackupKeys(ctx context.Context, userID, version, roomID, sessionID string) (storage.BackupCount, error) {
	var out storage.BackupCount
	n, ok := parseVersion(version)
	if !ok {
		return out, storage.ErrNotFound
	}
	err := s.Write(ctx, func(t *Tx) error {
		if err := liveVersion(t, userID, n); err != nil {
			return err
		}
		res, err := t.Exec(`DELETE FROM e2ee_backup_keys WHERE user_id=? AND version=? AND (?='' OR room_id=?) AND (?='' OR session_id=?)`,
			userID, n, roomID, roomID, sessionID, sessionID)
		if err != nil {
			return fmt.Errorf("sqlite: delete backup keys: %w", err)
		}
		if k, _ := res.RowsAffected(); k > 0 {
			if _, err := t.Exec(`UPDATE e2ee_backup_versions SET etag=etag+1 WHERE user_id=? AND version=?`, userID, n); err != nil {
				return err
			}
		}
		out, err = backupCount(t, userID, n)
		return err
	})
	return out, err
}
