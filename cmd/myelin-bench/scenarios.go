package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// config holds the scenario sizes (all bounded; see the flags in main.go).
type config struct {
	RegUsers        int
	RegConc         int
	Senders         int
	PerSender       int
	CipherBytes     int
	Receivers       int
	E2EMessages     int
	E2ERate         float64
	Devices         int
	DeviceUsers     int
	OTKs            int
	UploadConc      int
	LoginConc       int
	SyncConc        int
	Rooms           int
	RoomMembers     int
	RoomConc        int
	ScenarioTimeout time.Duration
}

// bench runs scenarios against one homeserver.
type bench struct {
	c      *hsClient
	cfg    config
	pid    int
	runID  string
	prefix string
	log    io.Writer

	pool    []*session // registered users not yet handed out
	nextReg atomic.Int64
	devices []*session // cfg.DeviceUsers users x (cfg.Devices/DeviceUsers) devices
}

func b64(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawStdEncoding.EncodeToString(b)
}

func (b *bench) logf(format string, a ...any) {
	if b.log != nil {
		fmt.Fprintf(b.log, "  "+format+"\n", a...)
	}
}

// parallel runs f(0..n-1) with at most conc at once and returns the first error.
func parallel(ctx context.Context, n, conc int, f func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex
		firstErr error
		next     atomic.Int64
		wg       sync.WaitGroup
	)
	for range min(max(conc, 1), max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// registerN registers n fresh users.
func (b *bench) registerN(ctx context.Context, n, conc int, lat []time.Duration) ([]*session, error) {
	out := make([]*session, n)
	err := parallel(ctx, n, conc, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("%s%d", b.prefix, b.nextReg.Add(1))
		t0 := time.Now()
		s, err := b.c.register(ctx, name, "pw-"+b.runID+"-"+strconv.Itoa(i))
		if err != nil {
			return err
		}
		if lat != nil {
			lat[i] = time.Since(t0)
		}
		out[i] = s
		return nil
	})
	return out, err
}

// users hands out n registered users not used by another scenario.
func (b *bench) users(ctx context.Context, n int) ([]*session, error) {
	if len(b.pool) < n {
		more, err := b.registerN(ctx, n-len(b.pool), max(b.cfg.RegConc, 4), nil)
		if err != nil {
			return nil, fmt.Errorf("register users: %w", err)
		}
		b.pool = append(b.pool, more...)
	}
	out := b.pool[:n:n]
	b.pool = b.pool[n:]
	return out, nil
}

// room creates a room owned by members[0] that all members have joined.
func (b *bench) room(ctx context.Context, members []*session, encrypted bool) (string, error) {
	var invite []string
	for _, m := range members[1:] {
		invite = append(invite, m.UserID)
	}
	roomID, err := b.c.createRoom(ctx, members[0], invite, encrypted)
	if err != nil {
		return "", err
	}
	err = parallel(ctx, len(members)-1, 8, func(ctx context.Context, i int) error {
		return b.c.join(ctx, members[i+1], roomID)
	})
	return roomID, err
}

// scenario runs setup (untimed) and then the measured phase with the server
// sampler around it.
func (b *bench) scenario(ctx context.Context, name string, params map[string]any,
	setup func(ctx context.Context) error, measure func(ctx context.Context, r *Result) error) *Result {
	r := &Result{Name: name, Params: params}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.ScenarioTimeout)
	defer cancel()
	fmt.Fprintf(b.log, "%s: %s\n", b.c.base, name)
	t0 := time.Now()
	if setup != nil {
		if err := setup(ctx); err != nil {
			setErr(r, fmt.Errorf("setup: %w", err))
			return r
		}
	}
	r.SetupSeconds = time.Since(t0).Seconds()
	s := startSampler(b.pid)
	r500, r429 := b.c.retries500.Load(), b.c.retries.Load()
	err := measure(ctx, r)
	r.Server = s.finish()
	if n := b.c.retries500.Load() - r500; n > 0 {
		r.add("http_500_retried", float64(n), "", "lower")
	}
	if n := b.c.retries.Load() - r429; n > 0 {
		r.add("http_429_retried", float64(n), "", "lower")
	}
	setErr(r, err)
	return r
}

func setErr(r *Result, err error) {
	switch {
	case err == nil:
	case errors.Is(err, errUnsupported):
		r.Skipped = "server does not support it: " + err.Error()
	default:
		r.Error = err.Error()
	}
}

// --- 1. registration rate ---

func (b *bench) runRegistration(ctx context.Context) *Result {
	n, conc := b.cfg.RegUsers, b.cfg.RegConc
	return b.scenario(ctx, "registration", map[string]any{"users": n, "concurrency": conc}, nil,
		func(ctx context.Context, r *Result) error {
			lat := make([]time.Duration, n)
			t0 := time.Now()
			users, err := b.registerN(ctx, n, conc, lat)
			el := time.Since(t0)
			if err != nil {
				return err
			}
			b.pool = append(b.pool, users...)
			r.add("users_per_s", float64(n)/el.Seconds(), "1/s", "higher")
			r.addLatencies("register", lat)
			return nil
		})
}

// --- 2. send throughput ---

func (b *bench) megolmContent(s *session) map[string]any {
	return map[string]any{
		"algorithm":  "m.megolm.v1.aes-sha2",
		"sender_key": b64(32),
		"ciphertext": b64(b.cfg.CipherBytes),
		"session_id": b64(32),
		"device_id":  s.DeviceID,
	}
}

func (b *bench) runSend(ctx context.Context, encrypted bool) *Result {
	name, evType := "send_plain", "m.room.message"
	if encrypted {
		name, evType = "send_encrypted", "m.room.encrypted"
	}
	var senders []*session
	var roomID string
	total := b.cfg.Senders * b.cfg.PerSender
	return b.scenario(ctx, name, map[string]any{"senders": b.cfg.Senders, "events": total, "type": evType},
		func(ctx context.Context) error {
			var err error
			if senders, err = b.users(ctx, b.cfg.Senders); err != nil {
				return err
			}
			roomID, err = b.room(ctx, senders, encrypted)
			return err
		},
		func(ctx context.Context, r *Result) error {
			lat := make([]time.Duration, total)
			t0 := time.Now()
			var wg sync.WaitGroup
			errs := make([]error, len(senders))
			for si, s := range senders {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range b.cfg.PerSender {
						var content any
						if encrypted {
							content = b.megolmContent(s)
						} else {
							content = map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("bench %s message %d from %d", b.runID, k, si)}
						}
						t := time.Now()
						if _, err := b.c.send(ctx, s, roomID, evType, content); err != nil {
							errs[si] = err
							return
						}
						lat[si*b.cfg.PerSender+k] = time.Since(t)
					}
				}()
			}
			wg.Wait()
			el := time.Since(t0)
			if err := errors.Join(errs...); err != nil {
				return err
			}
			r.add("events_per_s", float64(total)/el.Seconds(), "1/s", "higher")
			r.addLatencies("send", lat)
			return nil
		})
}

// --- 3. send-to-sync latency ---

func (b *bench) runSyncLatency(ctx context.Context) *Result {
	var members []*session
	var roomID string
	nRecv, nMsg := b.cfg.Receivers, b.cfg.E2EMessages
	since := make([]string, nRecv)
	var filter string
	return b.scenario(ctx, "sync_latency", map[string]any{"receivers": nRecv, "messages": nMsg, "rate_per_s": b.cfg.E2ERate},
		func(ctx context.Context) error {
			var err error
			if members, err = b.users(ctx, nRecv+1); err != nil {
				return err
			}
			if roomID, err = b.room(ctx, members, false); err != nil {
				return err
			}
			f, _ := json.Marshal(map[string]any{
				"room": map[string]any{
					"rooms":    []string{roomID},
					"timeline": map[string]any{"limit": 200, "types": []string{"m.room.message"}},
					"state":    map[string]any{"lazy_load_members": true},
				},
				"presence":     map[string]any{"types": []string{}},
				"account_data": map[string]any{"types": []string{}},
			})
			filter = string(f)
			return parallel(ctx, nRecv, 8, func(ctx context.Context, i int) error {
				sr, err := b.c.sync(ctx, members[i+1], "", filter, 0)
				if err != nil {
					return err
				}
				since[i] = sr.NextBatch
				return nil
			})
		},
		func(ctx context.Context, r *Result) error {
			sent := make([]atomic.Int64, nMsg) // unix nanos at send start
			type recvState struct {
				got     []bool
				n       int
				lat     []time.Duration
				dups    int
				limited int
				err     error
			}
			states := make([]*recvState, nRecv)
			rctx, rcancel := context.WithCancel(ctx)
			defer rcancel()
			var wg sync.WaitGroup
			var polling atomic.Int64
			allDone := make(chan struct{})
			var finished atomic.Int64
			for i := range nRecv {
				st := &recvState{got: make([]bool, nMsg)}
				states[i] = st
				wg.Add(1)
				go func() {
					defer wg.Done()
					tok := since[i]
					first := true
					for st.n < nMsg {
						if first {
							polling.Add(1)
							first = false
						}
						sr, err := b.c.sync(rctx, members[i+1], tok, filter, 30000)
						now := time.Now()
						if err != nil {
							if rctx.Err() == nil {
								st.err = err
							}
							return
						}
						tok = sr.NextBatch
						jr := sr.Rooms.Join[roomID]
						if jr.Timeline.Limited {
							st.limited++
						}
						for _, ev := range jr.Timeline.Events {
							var c struct {
								Run string `json:"bench_run"`
								Seq *int   `json:"bench_seq"`
							}
							if json.Unmarshal(ev.Content, &c) != nil || c.Run != b.runID || c.Seq == nil || *c.Seq < 0 || *c.Seq >= nMsg {
								continue
							}
							if st.got[*c.Seq] {
								st.dups++
								continue
							}
							st.got[*c.Seq] = true
							st.n++
							st.lat = append(st.lat, now.Sub(time.Unix(0, sent[*c.Seq].Load())))
						}
					}
					if finished.Add(1) == int64(nRecv) {
						close(allDone)
					}
				}()
			}
			// Let the receivers park their long-polls before the first send.
			for polling.Load() < int64(nRecv) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(300 * time.Millisecond)
			sender := members[0]
			interval := time.Duration(float64(time.Second) / b.cfg.E2ERate)
			tick := time.NewTicker(interval)
			defer tick.Stop()
			var sendLat []time.Duration
			var sendErr error
			for k := range nMsg {
				<-tick.C
				t := time.Now()
				sent[k].Store(t.UnixNano())
				_, err := b.c.send(ctx, sender, roomID, "m.room.message", map[string]any{
					"msgtype": "m.text", "body": fmt.Sprintf("latency probe %d", k), "bench_run": b.runID, "bench_seq": k,
				})
				if err != nil {
					sendErr = err
					break
				}
				sendLat = append(sendLat, time.Since(t))
			}
			grace := time.NewTimer(15 * time.Second)
			select {
			case <-allDone:
			case <-grace.C:
			case <-ctx.Done():
			}
			grace.Stop()
			rcancel()
			wg.Wait()
			var lat []time.Duration
			delivered, dups, limited := 0, 0, 0
			var recvErr error
			for _, st := range states {
				lat = append(lat, st.lat...)
				delivered += st.n
				dups += st.dups
				limited += st.limited
				if st.err != nil && recvErr == nil {
					recvErr = st.err
				}
			}
			r.add("delivered_pct", 100*float64(delivered)/float64(nRecv*nMsg), "%", "higher")
			r.addLatencies("latency", lat)
			r.addLatencies("send", sendLat)
			r.add("duplicates", float64(dups), "", "lower")
			r.add("limited_timelines", float64(limited), "", "lower")
			if sendErr != nil {
				return sendErr
			}
			if recvErr != nil {
				return recvErr
			}
			if delivered != nRecv*nMsg {
				return fmt.Errorf("only %d of %d (message, receiver) pairs delivered", delivered, nRecv*nMsg)
			}
			return nil
		})
}

// --- shared device pool for 4 and 5 ---

func (b *bench) ensureDevices(ctx context.Context) error {
	if b.devices != nil {
		return nil
	}
	nu := b.cfg.DeviceUsers
	per := (b.cfg.Devices + nu - 1) / nu
	users, err := b.users(ctx, nu)
	if err != nil {
		return err
	}
	devs := make([]*session, 0, b.cfg.Devices)
	for _, u := range users {
		devs = append(devs, u)
		for range per - 1 {
			devs = append(devs, &session{UserID: u.UserID, Password: u.Password})
		}
	}
	devs = devs[:b.cfg.Devices]
	b.logf("logging in %d devices of %d users", len(devs), nu)
	err = parallel(ctx, len(devs), b.cfg.LoginConc, func(ctx context.Context, i int) error {
		if devs[i].Token != "" {
			return nil
		}
		s, err := b.c.login(ctx, devs[i].UserID, devs[i].Password)
		if err != nil {
			return err
		}
		devs[i] = s
		return nil
	})
	if err != nil {
		return fmt.Errorf("log in devices: %w", err)
	}
	b.devices = devs
	return nil
}

// canonical encodes v as Matrix canonical JSON for the shapes the tool signs
// (objects, strings, string lists; no numbers, no non-ASCII): encoding/json
// sorts map keys and adds no whitespace; HTML escaping is turned off.
func canonical(v any) ([]byte, error) {
	var buf []byte
	w := &sliceWriter{&buf}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf[:len(buf)-1], nil // drop the trailing newline
}

type sliceWriter struct{ b *[]byte }

func (w *sliceWriter) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// sign adds a real ed25519 signature by userID/keyID to obj.
func sign(obj map[string]any, userID, keyID string, priv ed25519.PrivateKey) error {
	cj, err := canonical(obj)
	if err != nil {
		return err
	}
	obj["signatures"] = map[string]any{userID: map[string]any{keyID: base64.RawStdEncoding.EncodeToString(ed25519.Sign(priv, cj))}}
	return nil
}

// keysUpload builds one device's /keys/upload body with real self-signatures.
func keysUpload(s *session, otks int) (map[string]any, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	kid := "ed25519:" + s.DeviceID
	dk := map[string]any{
		"user_id":    s.UserID,
		"device_id":  s.DeviceID,
		"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
		"keys": map[string]any{
			"curve25519:" + s.DeviceID: b64(32),
			kid:                        base64.RawStdEncoding.EncodeToString(pub),
		},
	}
	if err := sign(dk, s.UserID, kid, priv); err != nil {
		return nil, err
	}
	ot := map[string]any{}
	for i := range otks {
		k := map[string]any{"key": b64(32)}
		if err := sign(k, s.UserID, kid, priv); err != nil {
			return nil, err
		}
		ot[fmt.Sprintf("signed_curve25519:AAAAA%04d", i)] = k
	}
	fb := map[string]any{"key": b64(32), "fallback": true}
	if err := sign(fb, s.UserID, kid, priv); err != nil {
		return nil, err
	}
	return map[string]any{
		"device_keys":   dk,
		"one_time_keys": ot,
		"fallback_keys": map[string]any{"signed_curve25519:AAAAAQ": fb},
	}, nil
}

// --- 4. keys upload / query / claim ---

func (b *bench) runKeys(ctx context.Context) []*Result {
	n := b.cfg.Devices
	var bodies []map[string]any
	up := b.scenario(ctx, "keys_upload", map[string]any{"devices": n, "users": b.cfg.DeviceUsers, "otks_per_device": b.cfg.OTKs},
		func(ctx context.Context) error {
			if err := b.ensureDevices(ctx); err != nil {
				return err
			}
			bodies = make([]map[string]any, n)
			for i, d := range b.devices {
				var err error
				if bodies[i], err = keysUpload(d, b.cfg.OTKs); err != nil {
					return err
				}
			}
			return nil
		},
		func(ctx context.Context, r *Result) error {
			lat := make([]time.Duration, n)
			t0 := time.Now()
			err := parallel(ctx, n, b.cfg.UploadConc, func(ctx context.Context, i int) error {
				t := time.Now()
				var out struct {
					Counts map[string]int `json:"one_time_key_counts"`
				}
				if _, err := b.c.do(ctx, "POST", "/_matrix/client/v3/keys/upload", b.devices[i].Token, bodies[i], &out); err != nil {
					return err
				}
				lat[i] = time.Since(t)
				if out.Counts["signed_curve25519"] != b.cfg.OTKs {
					return fmt.Errorf("keys/upload: server counts %d signed_curve25519 keys, uploaded %d", out.Counts["signed_curve25519"], b.cfg.OTKs)
				}
				return nil
			})
			el := time.Since(t0)
			if err != nil {
				return err
			}
			r.add("uploads_per_s", float64(n)/el.Seconds(), "1/s", "higher")
			r.add("all_uploads_ms", ms(el), "ms", "lower")
			r.addLatencies("upload", lat)
			return nil
		})
	out := []*Result{up}
	if up.Error != "" || up.Skipped != "" {
		return out
	}
	byUser := map[string][]string{}
	for _, d := range b.devices {
		byUser[d.UserID] = append(byUser[d.UserID], d.DeviceID)
	}
	asker := b.devices[0]
	out = append(out, b.scenario(ctx, "keys_query", map[string]any{"users": len(byUser), "devices": n}, nil,
		func(ctx context.Context, r *Result) error {
			q := map[string][]string{}
			for u := range byUser {
				q[u] = []string{}
			}
			var resp struct {
				DeviceKeys map[string]map[string]json.RawMessage `json:"device_keys"`
				Failures   map[string]json.RawMessage            `json:"failures"`
			}
			t0 := time.Now()
			if _, err := b.c.do(ctx, "POST", "/_matrix/client/v3/keys/query", asker.Token, map[string]any{"device_keys": q, "timeout": 10000}, &resp); err != nil {
				return err
			}
			el := time.Since(t0)
			got := 0
			for _, ds := range resp.DeviceKeys {
				got += len(ds)
			}
			r.add("query_ms", ms(el), "ms", "lower")
			r.add("devices_returned", float64(got), "", "")
			if got != n {
				return fmt.Errorf("keys/query returned %d of %d devices", got, n)
			}
			return nil
		}))
	out = append(out, b.scenario(ctx, "keys_claim", map[string]any{"devices": n}, nil,
		func(ctx context.Context, r *Result) error {
			q := map[string]map[string]string{}
			for u, ds := range byUser {
				q[u] = map[string]string{}
				for _, d := range ds {
					q[u][d] = "signed_curve25519"
				}
			}
			var resp struct {
				OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
			}
			t0 := time.Now()
			if _, err := b.c.do(ctx, "POST", "/_matrix/client/v3/keys/claim", asker.Token, map[string]any{"one_time_keys": q, "timeout": 10000}, &resp); err != nil {
				return err
			}
			el := time.Since(t0)
			got := 0
			for _, ds := range resp.OneTimeKeys {
				for _, ks := range ds {
					if len(ks) > 0 {
						got++
					}
				}
			}
			r.add("claim_ms", ms(el), "ms", "lower")
			r.add("keys_returned", float64(got), "", "")
			if got != n {
				return fmt.Errorf("keys/claim returned keys for %d of %d devices", got, n)
			}
			return nil
		}))
	return out
}

// --- 5. to-device fan-out ---

func (b *bench) runToDevice(ctx context.Context) *Result {
	var sender *session
	since := make([]string, b.cfg.Devices)
	filter := `{"room":{"rooms":[]},"presence":{"types":[]},"account_data":{"types":[]}}`
	return b.scenario(ctx, "to_device", map[string]any{"devices": b.cfg.Devices, "users": b.cfg.DeviceUsers},
		func(ctx context.Context) error {
			if err := b.ensureDevices(ctx); err != nil {
				return err
			}
			us, err := b.users(ctx, 1)
			if err != nil {
				return err
			}
			sender = us[0]
			b.logf("initial sync of %d devices", len(b.devices))
			return parallel(ctx, len(b.devices), b.cfg.LoginConc*4, func(ctx context.Context, i int) error {
				sr, err := b.c.sync(ctx, b.devices[i], "", filter, 0)
				if err != nil {
					return err
				}
				since[i] = sr.NextBatch
				return nil
			})
		},
		func(ctx context.Context, r *Result) error {
			n := len(b.devices)
			rctx, rcancel := context.WithCancel(ctx)
			defer rcancel()
			arrival := make([]time.Time, n)
			errs := make([]error, n)
			var polling, done atomic.Int64
			allDone := make(chan struct{})
			sem := make(chan struct{}, b.cfg.SyncConc)
			var wg sync.WaitGroup
			for i, d := range b.devices {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tok := since[i]
					first := true
					for {
						sem <- struct{}{}
						if first {
							polling.Add(1)
							first = false
						}
						sr, err := b.c.sync(rctx, d, tok, filter, 30000)
						<-sem
						now := time.Now()
						if err != nil {
							if rctx.Err() == nil {
								errs[i] = err
							}
							return
						}
						tok = sr.NextBatch
						for _, ev := range sr.ToDevice.Events {
							var c struct {
								Run string `json:"bench_run"`
							}
							if json.Unmarshal(ev.Content, &c) == nil && c.Run == b.runID {
								arrival[i] = now
								if done.Add(1) == int64(n) {
									close(allDone)
								}
								return
							}
						}
					}
				}()
			}
			for polling.Load() < int64(min(n, b.cfg.SyncConc)) && ctx.Err() == nil {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond)
			msgs := map[string]map[string]any{}
			for _, d := range b.devices {
				if msgs[d.UserID] == nil {
					msgs[d.UserID] = map[string]any{}
				}
				msgs[d.UserID][d.DeviceID] = map[string]any{
					"algorithm":  "m.olm.v1.curve25519-aes-sha2",
					"sender_key": b64(32),
					"ciphertext": map[string]any{b64(32): map[string]any{"type": 0, "body": b64(120)}},
					"bench_run":  b.runID,
				}
			}
			t0 := time.Now()
			err := b.c.sendToDevice(ctx, sender, "m.room.encrypted", msgs)
			sendDur := time.Since(t0)
			if err != nil {
				rcancel()
				wg.Wait()
				return err
			}
			grace := time.NewTimer(max(30*time.Second, 3*sendDur))
			select {
			case <-allDone:
			case <-grace.C:
			case <-ctx.Done():
			}
			grace.Stop()
			rcancel()
			wg.Wait()
			var lat []time.Duration
			for _, a := range arrival {
				if !a.IsZero() {
					lat = append(lat, a.Sub(t0))
				}
			}
			r.add("send_request_ms", ms(sendDur), "ms", "lower")
			if len(lat) == n {
				r.add("full_delivery_ms", ms(maxDur(lat)), "ms", "lower")
			}
			r.add("delivered_pct", 100*float64(len(lat))/float64(n), "%", "higher")
			r.addLatencies("arrival", lat)
			if err := errors.Join(errs...); err != nil {
				return err
			}
			if len(lat) != n {
				return fmt.Errorf("to-device message reached %d of %d devices", len(lat), n)
			}
			return nil
		})
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// --- 6. room creation ---

func (b *bench) runRooms(ctx context.Context) *Result {
	var members []*session
	n := b.cfg.Rooms
	return b.scenario(ctx, "rooms", map[string]any{"rooms": n, "members": b.cfg.RoomMembers, "concurrency": b.cfg.RoomConc},
		func(ctx context.Context) error {
			var err error
			members, err = b.users(ctx, b.cfg.RoomMembers)
			return err
		},
		func(ctx context.Context, r *Result) error {
			lat := make([]time.Duration, n)
			t0 := time.Now()
			err := parallel(ctx, n, b.cfg.RoomConc, func(ctx context.Context, i int) error {
				t := time.Now()
				var invite []string
				for _, m := range members[1:] {
					invite = append(invite, m.UserID)
				}
				roomID, err := b.c.createRoom(ctx, members[0], invite, true)
				if err != nil {
					return err
				}
				for _, m := range members[1:] {
					if err := b.c.join(ctx, m, roomID); err != nil {
						return err
					}
				}
				lat[i] = time.Since(t)
				return nil
			})
			el := time.Since(t0)
			if err != nil {
				return err
			}
			r.add("rooms_per_s", float64(n)/el.Seconds(), "1/s", "higher")
			r.addLatencies("room", lat)
			return nil
		})
}
