package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"myelin/server/storage"
)

// CreateUser implements storage.Accounts.
func (s *Store) CreateUser(ctx context.Context, u storage.User, dev *storage.Device, tokenHash []byte) error {
	return s.Write(ctx, func(t *Tx) error {
		if _, err := t.Exec(`INSERT INTO users(user_id, password_hash, displayname, avatar_url, created_ts) VALUES(?,?,?,?,?)`,
			u.UserID, u.PasswordHash, u.DisplayName, u.AvatarURL, u.CreatedTS); err != nil {
			if isUnique(err) {
				return storage.ErrExists
			}
			return fmt.Errorf("sqlite: create user: %w", err)
		}
		if dev != nil {
			return loginTx(t, *dev, tokenHash)
		}
		return nil
	})
}

func loginTx(t *Tx, d storage.Device, tokenHash []byte) error {
	if _, err := t.Exec(`INSERT INTO devices(user_id, device_id, display_name, created_ts, last_seen_ts) VALUES(?,?,?,?,?)
		ON CONFLICT(user_id, device_id) DO UPDATE SET display_name=CASE WHEN excluded.display_name!='' THEN excluded.display_name ELSE devices.display_name END`,
		d.UserID, d.DeviceID, d.DisplayName, d.CreatedTS, d.CreatedTS); err != nil {
		return fmt.Errorf("sqlite: upsert device: %w", err)
	}
	// A re-login on an existing device invalidates its previous tokens but keeps
	// the device (and so its E2EE keys).
	if _, err := t.Exec(`DELETE FROM access_tokens WHERE user_id=? AND device_id=?`, d.UserID, d.DeviceID); err != nil {
		return fmt.Errorf("sqlite: delete old tokens: %w", err)
	}
	if tokenHash != nil {
		if _, err := t.Exec(`INSERT INTO access_tokens(token_hash, user_id, device_id, created_ts) VALUES(?,?,?,?)`,
			tokenHash, d.UserID, d.DeviceID, d.CreatedTS); err != nil {
			return fmt.Errorf("sqlite: insert token: %w", err)
		}
	}
	t.Wake(d.UserID)
	return nil
}

// User implements storage.Accounts.
func (s *Store) User(ctx context.Context, userID string) (storage.User, error) {
	u := storage.User{UserID: userID}
	var deact int
	err := s.rq.QueryRowContext(ctx, `SELECT password_hash, displayname, avatar_url, deactivated, created_ts FROM users WHERE user_id=?`, userID).
		Scan(&u.PasswordHash, &u.DisplayName, &u.AvatarURL, &deact, &u.CreatedTS)
	u.Deactivated = deact != 0
	return u, notFound(err)
}

// SetPasswordHash implements storage.Accounts.
func (s *Store) SetPasswordHash(ctx context.Context, userID, hash string) error {
	return s.Write(ctx, func(t *Tx) error {
		res, err := t.Exec(`UPDATE users SET password_hash=? WHERE user_id=?`, hash, userID)
		return affected(res, err)
	})
}

// Deactivate implements storage.Accounts.
func (s *Store) Deactivate(ctx context.Context, userID string) error {
	return s.Write(ctx, func(t *Tx) error {
		res, err := t.Exec(`UPDATE users SET deactivated=1, password_hash='' WHERE user_id=?`, userID)
		return affected(res, err)
	})
}

// SetProfile implements storage.Accounts.
func (s *Store) SetProfile(ctx context.Context, userID string, displayName, avatarURL *string) error {
	return s.Write(ctx, func(t *Tx) error {
		if displayName != nil {
			res, err := t.Exec(`UPDATE users SET displayname=? WHERE user_id=?`, *displayName, userID)
			if err := affected(res, err); err != nil {
				return err
			}
		}
		if avatarURL != nil {
			res, err := t.Exec(`UPDATE users SET avatar_url=? WHERE user_id=?`, *avatarURL, userID)
			if err := affected(res, err); err != nil {
				return err
			}
		}
		return nil
	})
}

func affected(res sql.Result, err error) error {
	if err != nil {
		return fmt.Errorf("sqlite: update: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: rows affected: %w", err)
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// Login implements storage.Accounts.
func (s *Store) Login(ctx context.Context, dev storage.Device, tokenHash []byte) error {
	return s.Write(ctx, func(t *Tx) error { return loginTx(t, dev, tokenHash) })
}

// SessionByToken implements storage.Accounts.
func (s *Store) SessionByToken(ctx context.Context, tokenHash []byte) (storage.Session, error) {
	var ss storage.Session
	err := s.rq.QueryRowContext(ctx, `SELECT user_id, device_id FROM access_tokens WHERE token_hash=?`, tokenHash).Scan(&ss.UserID, &ss.DeviceID)
	return ss, notFound(err)
}

const deviceCols = `user_id, device_id, display_name, last_seen_ip, last_seen_ts, created_ts`

func scanDevice(sc interface{ Scan(...any) error }) (storage.Device, error) {
	var d storage.Device
	err := sc.Scan(&d.UserID, &d.DeviceID, &d.DisplayName, &d.LastSeenIP, &d.LastSeenTS, &d.CreatedTS)
	return d, err
}

// Devices implements storage.Accounts.
func (s *Store) Devices(ctx context.Context, userID string) ([]storage.Device, error) {
	rows, err := s.rq.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id=? ORDER BY device_id`, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: devices: %w", err)
	}
	defer rows.Close()
	var out []storage.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: devices: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Device implements storage.Accounts.
func (s *Store) Device(ctx context.Context, userID, deviceID string) (storage.Device, error) {
	d, err := scanDevice(s.rq.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE user_id=? AND device_id=?`, userID, deviceID))
	return d, notFound(err)
}

// RenameDevice implements storage.Accounts.
func (s *Store) RenameDevice(ctx context.Context, userID, deviceID, name string) error {
	return s.Write(ctx, func(t *Tx) error {
		res, err := t.Exec(`UPDATE devices SET display_name=? WHERE user_id=? AND device_id=?`, name, userID, deviceID)
		return affected(res, err)
	})
}

// DeleteDevices implements storage.Accounts.
func (s *Store) DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error {
	return s.Write(ctx, func(t *Tx) error {
		if deviceIDs == nil {
			rows, err := t.Query(`SELECT device_id FROM devices WHERE user_id=?`, userID)
			if err != nil {
				return fmt.Errorf("sqlite: list devices: %w", err)
			}
			for rows.Next() {
				var d string
				if err := rows.Scan(&d); err != nil {
					rows.Close()
					return fmt.Errorf("sqlite: list devices: %w", err)
				}
				deviceIDs = append(deviceIDs, d)
			}
			rows.Close()
			if len(deviceIDs) == 0 {
				return nil
			}
		}
		s.hookMu.RLock()
		hooks := s.deviceDeleteHooks
		s.hookMu.RUnlock()
		for _, h := range hooks {
			if err := h(t, userID, deviceIDs); err != nil {
				return err
			}
		}
		for _, d := range deviceIDs {
			if _, err := t.Exec(`DELETE FROM access_tokens WHERE user_id=? AND device_id=?`, userID, d); err != nil {
				return fmt.Errorf("sqlite: delete tokens: %w", err)
			}
			if _, err := t.Exec(`DELETE FROM devices WHERE user_id=? AND device_id=?`, userID, d); err != nil {
				return fmt.Errorf("sqlite: delete device: %w", err)
			}
		}
		t.Wake(userID)
		return nil
	})
}

// TouchDevice implements storage.Accounts. It is best effort and asynchronous.
func (s *Store) TouchDevice(ctx context.Context, userID, deviceID, ip string, ts int64) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.Write(ctx, func(t *Tx) error {
			_, err := t.Exec(`UPDATE devices SET last_seen_ip=?, last_seen_ts=? WHERE user_id=? AND device_id=?`, ip, ts, userID, deviceID)
			return err
		})
	}()
}

// PutAccountData implements storage.AccountData.
func (s *Store) PutAccountData(ctx context.Context, userID, roomID, typ string, content json.RawMessage) (int64, error) {
	var pos int64
	err := s.Write(ctx, func(t *Tx) error {
		pos = t.NextPos()
		t.s.hints.noteAccountData(userID, pos)
		if _, err := t.Exec(`INSERT INTO account_data(user_id, room_id, type, content, stream_pos) VALUES(?,?,?,?,?)
			ON CONFLICT(user_id, room_id, type) DO UPDATE SET content=excluded.content, stream_pos=excluded.stream_pos`,
			userID, roomID, typ, string(content), pos); err != nil {
			return fmt.Errorf("sqlite: put account data: %w", err)
		}
		t.Wake(userID)
		return nil
	})
	return pos, err
}

// AccountData implements storage.AccountData.
func (s *Store) AccountData(ctx context.Context, userID, roomID, typ string) (json.RawMessage, error) {
	var c string
	err := s.rq.QueryRowContext(ctx, `SELECT content FROM account_data WHERE user_id=? AND room_id=? AND type=?`, userID, roomID, typ).Scan(&c)
	if err != nil {
		return nil, notFound(err)
	}
	return json.RawMessage(c), nil
}

// AccountDataRange implements storage.AccountData.
func (s *Store) AccountDataRange(ctx context.Context, userID string, from, to int64) ([]storage.AccountDataItem, error) {
	if from >= to || !s.hints.accountDataMoved(userID, from) {
		return nil, nil
	}
	rows, err := s.rq.QueryContext(ctx, `SELECT room_id, type, content, stream_pos FROM account_data
		WHERE user_id=? AND stream_pos>? AND stream_pos<=? ORDER BY stream_pos`, userID, from, to)
	if err != nil {
		return nil, fmt.Errorf("sqlite: account data range: %w", err)
	}
	defer rows.Close()
	var out []storage.AccountDataItem
	for rows.Next() {
		var it storage.AccountDataItem
		var c string
		if err := rows.Scan(&it.RoomID, &it.Type, &c, &it.Pos); err != nil {
			return nil, fmt.Errorf("sqlite: account data range: %w", err)
		}
		it.Content = json.RawMessage(c)
		out = append(out, it)
	}
	return out, rows.Err()
}

// PutFilter implements storage.Filters.
func (s *Store) PutFilter(ctx context.Context, userID string, filter json.RawMessage) (string, error) {
	var id int64
	err := s.Write(ctx, func(t *Tx) error {
		if err := t.QueryRow(`SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id=?`, userID).Scan(&id); err != nil {
			return fmt.Errorf("sqlite: next filter id: %w", err)
		}
		_, err := t.Exec(`INSERT INTO filters(user_id, filter_id, filter) VALUES(?,?,?)`, userID, id, string(filter))
		return err
	})
	return strconv.FormatInt(id, 10), err
}

// Filter implements storage.Filters.
func (s *Store) Filter(ctx context.Context, userID, filterID string) (json.RawMessage, error) {
	id, err := strconv.ParseInt(filterID, 10, 64)
	if err != nil {
		return nil, storage.ErrNotFound
	}
	var f string
	if err := s.rq.QueryRowContext(ctx, `SELECT filter FROM filters WHERE user_id=? AND filter_id=?`, userID, id).Scan(&f); err != nil {
		return nil, notFound(err)
	}
	return json.RawMessage(f), nil
}

// Txn implements storage.Txns.
func (s *Store) Txn(ctx context.Context, k storage.TxnKey) (storage.TxnResult, error) {
	var r storage.TxnResult
	var body string
	err := s.rq.QueryRowContext(ctx, `SELECT status, body FROM txns WHERE user_id=? AND device_id=? AND path=?`, k.UserID, k.DeviceID, k.Path).Scan(&r.Status, &body)
	if err != nil {
		return r, notFound(err)
	}
	r.Body = json.RawMessage(body)
	return r, nil
}

// PutTxn records a client transaction result inside a write transaction.
func (t *Tx) PutTxn(k storage.TxnKey, res storage.TxnResult) error {
	_, err := t.Exec(`INSERT INTO txns(user_id, device_id, path, status, body, created_ts) VALUES(?,?,?,?,?,?)
		ON CONFLICT DO NOTHING`, k.UserID, k.DeviceID, k.Path, res.Status, string(res.Body), time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("sqlite: put txn: %w", err)
	}
	return nil
}

// TxnTx looks up a client transaction result inside a write transaction.
func (t *Tx) TxnTx(k storage.TxnKey) (storage.TxnResult, error) {
	var r storage.TxnResult
	var body string
	err := t.QueryRow(`SELECT status, body FROM txns WHERE user_id=? AND device_id=? AND path=?`, k.UserID, k.DeviceID, k.Path).Scan(&r.Status, &body)
	if err != nil {
		return r, notFound(err)
	}
	r.Body = json.RawMessage(body)
	return r, nil
}
