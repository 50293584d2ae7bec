package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"
)

// maxResponse bounds one response body read by the tool.
const maxResponse = 64 << 20

// errUnsupported marks an endpoint the server does not implement (404/405
// M_UNRECOGNIZED): the scenario is skipped rather than failed.
var errUnsupported = errors.New("myelin-bench: endpoint not supported by the server")

// httpError is a non-2xx answer from the homeserver.
type httpError struct {
	Method, Path string
	Status       int
	Errcode      string
	Body         string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("myelin-bench: %s %s: HTTP %d %s %s", e.Method, e.Path, e.Status, e.Errcode, e.Body)
}

func (e *httpError) Unwrap() error {
	if e.Status == http.StatusNotFound && e.Errcode == "M_UNRECOGNIZED" || e.Status == http.StatusMethodNotAllowed {
		return errUnsupported
	}
	return nil
}

// hsClient talks to one homeserver over the standard client-server API.
type hsClient struct {
	base     string
	hc       *http.Client
	requests atomic.Int64
	retries  atomic.Int64
	// retries500 counts 500 answers retried.
	retries500 atomic.Int64
}

func newHSClient(base string) *hsClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4096,
		MaxIdleConnsPerHost: 4096,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &hsClient{base: base, hc: &http.Client{Transport: tr, Timeout: 120 * time.Second}}
}

func (c *hsClient) close() { c.hc.CloseIdleConnections() }

// session is one logged-in device.
type session struct {
	UserID   string
	DeviceID string
	Token    string
	Password string
}

// do sends one JSON request and decodes a JSON answer into out (if non-nil).
// 429 answers are retried after the server's retry_after_ms, 500 answers
// after a short backoff (both counted).
func (c *hsClient) do(ctx context.Context, method, path, token string, body, out any) (int, error) {
	var raw []byte
	if body != nil {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			return 0, err
		}
	}
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if raw != nil {
			rd = bytes.NewReader(raw)
		}
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
		if err != nil {
			return 0, err
		}
		if raw != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		c.requests.Add(1)
		resp, err := c.hc.Do(req)
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
		resp.Body.Close()
		if err != nil {
			return resp.StatusCode, err
		}
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 50 {
			c.retries.Add(1)
			var e struct {
				RetryAfterMS int64 `json:"retry_after_ms"`
			}
			_ = json.Unmarshal(b, &e)
			wait := time.Duration(e.RetryAfterMS) * time.Millisecond
			if wait <= 0 || wait > 5*time.Second {
				wait = 200 * time.Millisecond
			}
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return resp.StatusCode, ctx.Err()
			}
		}
		if (resp.StatusCode == http.StatusInternalServerError || bytes.Contains(b, []byte("database is locked"))) && attempt < 30 {
			// SQLite servers (Dendrite) answer 500 when concurrent writers
			// collide ("database is locked"; on /keys/upload with the message
			// hidden, or 400 with it in per-key errors): nothing was
			// committed, and a client would retry.
			// Counted and reported, so a server that fails shows it.
			c.retries500.Add(1)
			select {
			case <-time.After(time.Duration(50+attempt*20) * time.Millisecond):
				continue
			case <-ctx.Done():
				return resp.StatusCode, ctx.Err()
			}
		}
		if resp.StatusCode/100 != 2 {
			he := &httpError{Method: method, Path: trimQuery(path), Status: resp.StatusCode, Body: truncate(string(b), 300)}
			var e struct {
				Errcode string `json:"errcode"`
			}
			_ = json.Unmarshal(b, &e)
			he.Errcode = e.Errcode
			if out != nil && resp.StatusCode == http.StatusUnauthorized {
				_ = json.Unmarshal(b, out) // UIA challenges carry a body the caller wants
			}
			return resp.StatusCode, he
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return resp.StatusCode, fmt.Errorf("myelin-bench: %s %s: decode: %w", method, trimQuery(path), err)
			}
		}
		return resp.StatusCode, nil
	}
}

func trimQuery(p string) string {
	if i := bytes.IndexByte([]byte(p), '?'); i >= 0 {
		return p[:i]
	}
	return p
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

type loginResp struct {
	UserID      string `json:"user_id"`
	AccessToken string `json:"access_token"`
	DeviceID    string `json:"device_id"`
}

// register creates a user with the UIA m.login.dummy flow: the first POST is
// answered 401 with a session, the second completes it.
func (c *hsClient) register(ctx context.Context, username, password string) (*session, error) {
	body := map[string]any{"username": username, "password": password, "initial_device_display_name": "bench"}
	var ch struct {
		Session string `json:"session"`
	}
	var lr loginResp
	st, err := c.do(ctx, "POST", "/_matrix/client/v3/register", "", body, &ch)
	if err == nil {
		// A server without UIA on registration: accept the answer as is.
		return nil, fmt.Errorf("myelin-bench: register %s: expected a 401 UIA challenge, got %d", username, st)
	}
	if st != http.StatusUnauthorized {
		return nil, err
	}
	body["auth"] = map[string]any{"type": "m.login.dummy", "session": ch.Session}
	if _, err := c.do(ctx, "POST", "/_matrix/client/v3/register", "", body, &lr); err != nil {
		return nil, err
	}
	if lr.AccessToken == "" {
		return nil, fmt.Errorf("myelin-bench: register %s: no access token", username)
	}
	return &session{UserID: lr.UserID, DeviceID: lr.DeviceID, Token: lr.AccessToken, Password: password}, nil
}

// login opens one more device of an existing user.
func (c *hsClient) login(ctx context.Context, userID, password string) (*session, error) {
	body := map[string]any{
		"type":                        "m.login.password",
		"identifier":                  map[string]any{"type": "m.id.user", "user": userID},
		"password":                    password,
		"initial_device_display_name": "bench",
	}
	var lr loginResp
	if _, err := c.do(ctx, "POST", "/_matrix/client/v3/login", "", body, &lr); err != nil {
		return nil, err
	}
	return &session{UserID: lr.UserID, DeviceID: lr.DeviceID, Token: lr.AccessToken, Password: password}, nil
}

func (c *hsClient) createRoom(ctx context.Context, s *session, invite []string, encrypted bool) (string, error) {
	body := map[string]any{"preset": "private_chat", "invite": nonNil(invite)}
	if encrypted {
		body["initial_state"] = []any{map[string]any{
			"type": "m.room.encryption", "state_key": "",
			"content": map[string]any{"algorithm": "m.megolm.v1.aes-sha2"},
		}}
	}
	var out struct {
		RoomID string `json:"room_id"`
	}
	if _, err := c.do(ctx, "POST", "/_matrix/client/v3/createRoom", s.Token, body, &out); err != nil {
		return "", err
	}
	return out.RoomID, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (c *hsClient) join(ctx context.Context, s *session, roomID string) error {
	_, err := c.do(ctx, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/join", s.Token, map[string]any{}, nil)
	return err
}

var txnSeq atomic.Int64

func (c *hsClient) send(ctx context.Context, s *session, roomID, evType string, content any) (string, error) {
	txn := "b" + strconv.FormatInt(time.Now().UnixNano(), 36) + "." + strconv.FormatInt(txnSeq.Add(1), 10)
	var out struct {
		EventID string `json:"event_id"`
	}
	p := "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + "/send/" + url.PathEscape(evType) + "/" + txn
	if _, err := c.do(ctx, "PUT", p, s.Token, content, &out); err != nil {
		return "", err
	}
	return out.EventID, nil
}

func (c *hsClient) sendToDevice(ctx context.Context, s *session, evType string, messages map[string]map[string]any) error {
	txn := "td" + randHex(8)
	p := "/_matrix/client/v3/sendToDevice/" + url.PathEscape(evType) + "/" + txn
	_, err := c.do(ctx, "PUT", p, s.Token, map[string]any{"messages": messages}, nil)
	return err
}

// syncResp holds the parts of a /sync answer the scenarios read.
type syncResp struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Events  []syncEvent `json:"events"`
				Limited bool        `json:"limited"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
	ToDevice struct {
		Events []syncEvent `json:"events"`
	} `json:"to_device"`
}

type syncEvent struct {
	Type    string          `json:"type"`
	Sender  string          `json:"sender"`
	EventID string          `json:"event_id"`
	Content json.RawMessage `json:"content"`
}

// sync runs one /sync. filter is an inline JSON filter (or "").
func (c *hsClient) sync(ctx context.Context, s *session, since, filter string, timeoutMS int) (*syncResp, error) {
	q := url.Values{}
	if since != "" {
		q.Set("since", since)
	}
	if filter != "" {
		q.Set("filter", filter)
	}
	q.Set("timeout", strconv.Itoa(timeoutMS))
	var out syncResp
	if _, err := c.do(ctx, "GET", "/_matrix/client/v3/sync?"+q.Encode(), s.Token, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
