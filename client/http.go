package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Default limits.
const (
	// DefaultMaxResponseBytes bounds every response body (the server is
	// untrusted): 32 MiB, enough for a large initial /sync.
	DefaultMaxResponseBytes = 32 << 20
	// DefaultMaxRetries is how many times an idempotent request is retried
	// after a transport error, 429 or 502/503/504.
	DefaultMaxRetries = 4
	// MaxRetryAfter caps a server's retry_after hint.
	MaxRetryAfter = time.Minute
)

// HTTPOptions configures an HTTP client. The zero value is usable.
type HTTPOptions struct {
	// HTTPClient sends the requests (default: a client with no overall
	// timeout; every call takes a context).
	HTTPClient *http.Client
	// Logger receives debug logs of requests (never bodies); nil discards.
	Logger *slog.Logger
	// MaxResponseBytes bounds response bodies (default
	// DefaultMaxResponseBytes).
	MaxResponseBytes int64
	// MaxRetries bounds retries of idempotent requests (default
	// DefaultMaxRetries; negative disables retries).
	MaxRetries int
	// Backoff spaces the retries.
	Backoff Backoff
}

// HTTP is a typed client for the Matrix client-server API. It holds the
// homeserver URL and, once logged in, the access token. It is safe for
// concurrent use.
type HTTP struct {
	base    *url.URL
	hc      *http.Client
	log     *slog.Logger
	max     int64
	retries int
	backoff Backoff

	mu       sync.RWMutex
	token    string
	userID   string
	deviceID string

	txnPrefix string
	txnSeq    atomic.Uint64
}

// NewHTTP returns a client for the homeserver at baseURL (for example
// "http://127.0.0.1:8008").
func NewHTTP(baseURL string, o HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: bad homeserver URL %q", baseURL)
	}
	h := &HTTP{base: u, hc: o.HTTPClient, log: o.Logger, max: o.MaxResponseBytes, retries: o.MaxRetries, backoff: o.Backoff}
	if h.hc == nil {
		h.hc = &http.Client{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.max <= 0 {
		h.max = DefaultMaxResponseBytes
	}
	if h.retries == 0 {
		h.retries = DefaultMaxRetries
	} else if h.retries < 0 {
		h.retries = 0
	}
	var b [9]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		return nil, fmt.Errorf("client: txn prefix: %w", err)
	}
	h.txnPrefix = base64.RawURLEncoding.EncodeToString(b[:])
	return h, nil
}

// SetSession installs an access token with its user and device (after Login,
// or restored from disk).
func (h *HTTP) SetSession(token, userID, deviceID string) {
	h.mu.Lock()
	h.token, h.userID, h.deviceID = token, userID, deviceID
	h.mu.Unlock()
}

// Session returns the access token, user ID and device ID in use.
func (h *HTTP) Session() (token, userID, deviceID string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.token, h.userID, h.deviceID
}

// UserID returns the logged-in user.
func (h *HTTP) UserID() string { _, u, _ := h.Session(); return u }

// DeviceID returns the logged-in device.
func (h *HTTP) DeviceID() string { _, _, d := h.Session(); return d }

// NewTxnID returns a transaction ID unique to this client instance. Reuse
// the same ID when retrying a send so that the server deduplicates it.
func (h *HTTP) NewTxnID() string {
	return h.txnPrefix + "." + strconv.FormatUint(h.txnSeq.Add(1), 10)
}

// request describes one call.
type request struct {
	method     string
	path       []string // path segments after /_matrix/client/, escaped here
	query      url.Values
	body       any // nil, json.RawMessage/[]byte (sent as is) or a value to marshal
	auth       bool
	idempotent bool
	max        int64 // per-call response bound (0: client default)
}

// errRetry marks responses that may be retried.
func retryable(err error) (time.Duration, bool) {
	var me *MatrixError
	if errors.As(err, &me) {
		switch me.Status {
		case http.StatusTooManyRequests:
			return min(me.RetryAfter, MaxRetryAfter), true
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return 0, true
		}
		return 0, false
	}
	if errors.Is(err, ErrResponseTooLarge) || errors.Is(err, ErrBadResponse) || errors.Is(err, ErrNotLoggedIn) {
		return 0, false
	}
	return 0, true // transport error
}

// do sends r, retrying idempotent requests, and decodes a JSON response into
// out (nil: discard; *json.RawMessage: raw bytes).
func (h *HTTP) do(ctx context.Context, r request, out any) error {
	var body []byte
	switch b := r.body.(type) {
	case nil:
	case json.RawMessage:
		body = b
	case []byte:
		body = b
	default:
		var err error
		if body, err = json.Marshal(b); err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
	}
	for attempt := 0; ; attempt++ {
		err := h.once(ctx, r, body, out)
		if err == nil || ctx.Err() != nil {
			if err != nil {
				return err
			}
			return nil
		}
		wait, ok := retryable(err)
		var me *MatrixError
		// A 429 was not processed: any request may be retried.
		if !ok || attempt >= h.retries || (!r.idempotent && !(errors.As(err, &me) && me.Status == http.StatusTooManyRequests)) {
			return err
		}
		if wait == 0 {
			wait = h.backoff.Delay(attempt)
		}
		h.log.Debug("client: retrying", "method", r.method, "path", strings.Join(r.path, "/"), "attempt", attempt+1, "wait", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

func (h *HTTP) once(ctx context.Context, r request, body []byte, out any) error {
	u := *h.base
	segs := make([]string, len(r.path))
	for i, s := range r.path {
		segs[i] = url.PathEscape(s)
	}
	u.RawPath = u.Path + "/_matrix/client/" + strings.Join(segs, "/")
	u.Path = u.Path + "/_matrix/client/" + strings.Join(r.path, "/")
	u.RawQuery = r.query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.auth {
		tok, _, _ := h.Session()
		if tok == "" {
			return ErrNotLoggedIn
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := h.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", r.method, u.Path, err)
	}
	defer res.Body.Close()
	limit := h.max
	if r.max > 0 {
		limit = r.max
	}
	raw, err := io.ReadAll(io.LimitReader(res.Body, limit+1))
	if err != nil {
		return fmt.Errorf("client: %s %s: read body: %w", r.method, u.Path, err)
	}
	if int64(len(raw)) > limit {
		return fmt.Errorf("%w: %s %s: over %d bytes", ErrResponseTooLarge, r.method, u.Path, limit)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return parseError(res, raw)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *json.RawMessage:
		if !json.Valid(raw) {
			return fmt.Errorf("%w: %s %s: not JSON", ErrBadResponse, r.method, u.Path)
		}
		*o = raw
		return nil
	default:
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%w: %s %s: %v", ErrBadResponse, r.method, u.Path, err)
		}
		return nil
	}
}

func parseError(res *http.Response, raw []byte) error {
	e := &MatrixError{Status: res.StatusCode}
	var b struct {
		ErrCode      string `json:"errcode"`
		Error        string `json:"error"`
		RetryAfterMS int64  `json:"retry_after_ms"`
	}
	if json.Unmarshal(raw, &b) == nil {
		e.ErrCode, e.Message = b.ErrCode, b.Error
		if b.RetryAfterMS > 0 {
			e.RetryAfter = time.Duration(min(b.RetryAfterMS, int64(MaxRetryAfter/time.Millisecond))) * time.Millisecond
		}
		e.Body = raw
	}
	if e.RetryAfter == 0 && res.StatusCode == http.StatusTooManyRequests {
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 {
			e.RetryAfter = min(time.Duration(s)*time.Second, MaxRetryAfter)
		}
	}
	if len(e.Message) > 1024 {
		e.Message = e.Message[:1024]
	}
	return e
}

// v3 returns the path segments for /_matrix/client/v3/...
func v3(segs ...string) []string { return append([]string{"v3"}, segs...) }
