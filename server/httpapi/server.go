package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	gosync "sync"
	"time"

	"myelin/api"
	"myelin/keys"
	"myelin/server/auth"
	"myelin/server/rooms"
	"myelin/server/storage"
	"myelin/server/sync"
)

// Registration modes.
const (
	RegistrationOpen     = "open"     // anyone may register (m.login.dummy)
	RegistrationToken    = "token"    // a registration token is required
	RegistrationDisabled = "disabled" // nobody may register
)

// RateLimit configures a token bucket: Rate requests per second, Burst at once.
// A zero Rate disables the limit.
type RateLimit struct {
	Rate  float64
	Burst int
}

// Config configures a [Server].
type Config struct {
	// ServerName is the Matrix server name (the part after ':' in user IDs).
	ServerName string
	// BaseURL is the public client-API URL announced in .well-known (optional).
	BaseURL string
	// Store is the storage engine.
	Store storage.Store
	// E2EE is the storage of the E2EE endpoints (usually the same engine).
	E2EE storage.E2EE
	// Notifier wakes long-polling /sync requests; the engine must call its Wake.
	Notifier *sync.Notifier
	// Logger receives request logs; nil discards.
	Logger *slog.Logger
	// Registration is one of RegistrationOpen, RegistrationToken, RegistrationDisabled.
	Registration string
	// RegistrationTokens are accepted by the m.login.registration_token stage.
	RegistrationTokens []string
	// MaxRequestBytes bounds request bodies (default 8 MiB).
	MaxRequestBytes int64
	// MediaDir holds uploaded media; empty disables the media endpoints.
	MediaDir string
	// MaxUploadBytes bounds media uploads (default 50 MiB).
	MaxUploadBytes int64
	// RateLimit applies per authenticated user; RateLimitAnon per client IP for
	// unauthenticated requests.
	RateLimit, RateLimitAnon RateLimit
	// SigningKey signs events; KeyVersion is the part after "ed25519:" of its ID.
	SigningKey *keys.Ed25519SecretKey
	KeyVersion string
	// Now and Rand are injectable for tests (defaults: time.Now, crypto/rand).
	Now  func() time.Time
	Rand io.Reader
}

// Server is the client-server API handler.
type Server struct {
	cfg      Config
	store    storage.Store
	notifier *sync.Notifier
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	rt       *router
	uia      *uiaStore
	limiter  *limiter
	typing   *typingStore
	e2ee     e2eeHooks
	hashSem  chan struct{} // bounds concurrent argon2id computations (memory)
	handler  http.Handler
	signer   rooms.Signer
	quit     chan struct{}
	quitOnce gosync.Once
	cache    roomCache
	memberC  memberCache

	dummyOnce gosync.Once
	dummy     string

	seenMu   gosync.Mutex
	lastSeen map[Session]time.Time
}

// touch records a device's last-seen time and IP, at most every few minutes
// (each record is a database write).
func (s *Server) touch(r *http.Request, sess Session) {
	now := s.now()
	s.seenMu.Lock()
	last, ok := s.lastSeen[sess]
	if ok && now.Sub(last) < 5*time.Minute {
		s.seenMu.Unlock()
		return
	}
	if len(s.lastSeen) > 100000 {
		clear(s.lastSeen)
	}
	s.lastSeen[sess] = now
	s.seenMu.Unlock()
	s.store.TouchDevice(r.Context(), sess.UserID, sess.DeviceID, clientIP(r), now.UnixMilli())
}

// expireTyping ends typing notifications whose timeout passed and wakes the
// rooms' members, until Close.
func (s *Server) expireTyping() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		for _, roomID := range s.typing.expire(s.now()) {
			st, err := s.store.CurrentState(context.Background(), roomID)
			if err != nil {
				continue
			}
			var users []string
			for _, e := range st {
				if e.Type == rooms.TypeMember && e.Membership == rooms.MembershipJoin && e.StateKey != nil {
					users = append(users, *e.StateKey)
				}
			}
			s.notifier.Kick(users...)
		}
	}
}

// Close makes long-polling requests return at once (call before shutdown).
func (s *Server) Close() { s.quitOnce.Do(func() { close(s.quit) }) }

// New builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("httpapi: config without store")
	}
	if cfg.ServerName == "" {
		return nil, errors.New("httpapi: config without server name")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 8 << 20
	}
	if cfg.MaxUploadBytes <= 0 {
		cfg.MaxUploadBytes = 50 << 20
	}
	if cfg.Notifier == nil {
		cfg.Notifier = sync.NewNotifier()
	}
	switch cfg.Registration {
	case "":
		cfg.Registration = RegistrationDisabled
	case RegistrationOpen, RegistrationToken, RegistrationDisabled:
	default:
		return nil, fmt.Errorf("httpapi: unknown registration mode %q", cfg.Registration)
	}
	if cfg.SigningKey == nil {
		k, err := keys.GenerateEd25519SecretKey(cfg.Rand)
		if err != nil {
			return nil, fmt.Errorf("httpapi: generate signing key: %w", err)
		}
		cfg.SigningKey, cfg.KeyVersion = k, "auto"
	}
	s := &Server{
		cfg: cfg, store: cfg.Store, notifier: cfg.Notifier, log: cfg.Logger, now: cfg.Now, rand: cfg.Rand,
		rt: &router{}, uia: newUIAStore(), limiter: newLimiter(cfg.Now), typing: newTypingStore(),
		hashSem: make(chan struct{}, hashConcurrency()), quit: make(chan struct{}), lastSeen: map[Session]time.Time{},
	}
	s.cache.rooms = map[string]*cachedRoom{}
	s.cache.vers = map[string]rooms.RoomVersion{}
	s.signer = rooms.NewSigner(cfg.ServerName, cfg.KeyVersion, cfg.SigningKey)
	s.routes()
	s.e2ee = s.registerE2EE()
	if s.e2ee.sync == nil {
		s.e2ee.sync = sync.NoE2EE{}
	}
	s.handler = s.serveHTTP()
	go s.expireTyping()
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// ---- routing ----

type authMode int

const (
	authNone authMode = iota
	authRequired
	authOptional
)

// handlerFunc handles a request and returns a JSON-encodable body (200) or an
// error. Return a *response for another status.
type handlerFunc func(r *http.Request) (any, error)

// response is a body with an explicit status.
type response struct {
	status int
	body   any
	header http.Header
}

type route struct {
	method  string
	segs    []string // literal, "{name}" or "{name...}"
	auth    authMode
	h       handlerFunc
	maxBody int64 // request body limit; 0 means Config.MaxRequestBytes
}

type router struct{ routes []*route }

func (rt *router) add(method, pattern string, mode authMode, h handlerFunc) *route {
	r := &route{method: method, segs: strings.Split(strings.Trim(pattern, "/"), "/"), auth: mode, h: h}
	rt.routes = append(rt.routes, r)
	return r
}

// match returns the route for method and unescaped path segments, and whether
// some route matched the path with another method.
func (rt *router) match(method string, segs []string) (*route, map[string]string, bool) {
	pathMatched := false
	for _, r := range rt.routes {
		params, ok := matchSegs(r.segs, segs)
		if !ok {
			continue
		}
		if r.method == method || (method == http.MethodHead && r.method == http.MethodGet) {
			return r, params, true
		}
		pathMatched = true
	}
	return nil, nil, pathMatched
}

func matchSegs(pat, segs []string) (map[string]string, bool) {
	var params map[string]string
	for i, p := range pat {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "...}") {
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-4]] = strings.Join(segs[i:], "/")
			return params, true
		}
		if i >= len(segs) {
			return nil, false
		}
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = segs[i]
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return params, len(pat) == len(segs)
}

// client registers a client-API route under /_matrix/client/v3 and its r0 alias.
func (s *Server) client(method, path string, mode authMode, h handlerFunc) {
	s.rt.add(method, "/_matrix/client/v3"+path, mode, h)
	s.rt.add(method, "/_matrix/client/r0"+path, mode, h)
}

// clientV1 registers a route under /_matrix/client/v1.
func (s *Server) clientV1(method, path string, mode authMode, h handlerFunc) {
	s.rt.add(method, "/_matrix/client/v1"+path, mode, h)
}

// handle registers a route with a full path pattern.
func (s *Server) handle(method, pattern string, mode authMode, h handlerFunc) {
	s.rt.add(method, pattern, mode, h)
}

// ---- request context ----

// Session is the authenticated caller of a request.
type Session struct {
	UserID   string
	DeviceID string
}

type ctxKey int

const sessionKey ctxKey = 1

// SessionFrom returns the authenticated session of a request (ok=false if none).
func SessionFrom(ctx context.Context) (Session, bool) {
	s, ok := ctx.Value(sessionKey).(Session)
	return s, ok
}

// mustSession returns the session of an authRequired route.
func mustSession(r *http.Request) Session {
	s, _ := SessionFrom(r.Context())
	return s
}

// ---- the HTTP entry point ----

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func setCORS(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
}

func (s *Server) serveHTTP() http.Handler {
	return http.HandlerFunc(func(w0 http.ResponseWriter, r *http.Request) {
		start := s.now()
		w := &statusWriter{ResponseWriter: w0}
		setCORS(w.Header())
		var sess Session
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				if w.status == 0 {
					writeError(w, api.Internal())
				}
			}
			// The query string is never logged: it may carry an access token.
			s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", w.status,
				"user_id", sess.UserID, "device_id", sess.DeviceID, "duration_ms", s.now().Sub(start).Milliseconds())
		}()
		if r.Method == http.MethodOptions {
			writeJSON(w, http.StatusOK, struct{}{})
			return
		}
		s.log.Debug("request start", "method", r.Method, "path", r.URL.Path)
		segs, ok := splitPath(r.URL.EscapedPath())
		if !ok {
			writeError(w, api.Unrecognized(http.StatusNotFound))
			return
		}
		rt, params, pathMatched := s.rt.match(r.Method, segs)
		if rt == nil {
			if pathMatched {
				writeError(w, api.Unrecognized(http.StatusMethodNotAllowed))
			} else {
				writeError(w, api.Unrecognized(http.StatusNotFound))
			}
			return
		}
		for k, v := range params {
			r.SetPathValue(k, v)
		}
		if rt.auth != authNone {
			tok := accessToken(r)
			switch {
			case tok != "":
				ss, err := s.store.SessionByToken(r.Context(), auth.HashToken(tok))
				if err != nil {
					if errors.Is(err, storage.ErrNotFound) {
						writeError(w, api.NewError(http.StatusUnauthorized, api.ErrCodeUnknownToken, "unknown access token"))
					} else {
						s.log.Error("session lookup", "err", err)
						writeError(w, api.Internal())
					}
					return
				}
				sess = Session{UserID: ss.UserID, DeviceID: ss.DeviceID}
				r = r.WithContext(context.WithValue(r.Context(), sessionKey, sess))
			case rt.auth == authRequired:
				writeError(w, api.NewError(http.StatusUnauthorized, api.ErrCodeMissingToken, "missing access token"))
				return
			}
		}
		key, lim := "ip:"+clientIP(r), s.cfg.RateLimitAnon
		if sess.UserID != "" {
			key, lim = "u:"+sess.UserID, s.cfg.RateLimit
		}
		if wait, ok := s.limiter.allow(key, lim); !ok {
			ms := wait.Milliseconds() + 1
			w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
			e := api.NewError(http.StatusTooManyRequests, api.ErrCodeLimitExceeded, "too many requests")
			e.Extra = map[string]any{"retry_after_ms": ms}
			writeError(w, e)
			return
		}
		limit := s.cfg.MaxRequestBytes
		if rt.maxBody > 0 {
			limit = rt.maxBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		body, err := rt.h(r)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if raw, ok := body.(*rawResponse); ok {
			defer raw.body.Close()
			for k, v := range raw.header {
				w.Header()[k] = v
			}
			w.WriteHeader(http.StatusOK)
			if r.Method != http.MethodHead {
				io.Copy(w, raw.body)
			}
			return
		}
		if resp, ok := body.(*response); ok {
			for k, v := range resp.header {
				w.Header()[k] = v
			}
			writeJSON(w, resp.status, resp.body)
			return
		}
		writeJSON(w, http.StatusOK, body)
	})
}

func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var ae *api.Error
	var ue *uiaChallenge
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ue):
		writeJSON(w, http.StatusUnauthorized, ue.body)
	case errors.As(err, &ae):
		writeError(w, ae)
	case errors.As(err, &mbe):
		writeError(w, api.TooLarge("request body too large"))
	case errors.Is(err, storage.ErrNotFound):
		writeError(w, api.NotFound("not found"))
	case errors.Is(err, context.Canceled):
		writeError(w, api.NewError(499, api.ErrCodeUnknown, "request cancelled"))
	default:
		s.log.Error("handler error", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, api.Internal())
	}
}

func splitPath(escaped string) ([]string, bool) {
	escaped = strings.TrimRight(escaped, "/")
	parts := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, false
		}
		parts[i] = u
	}
	return parts, true
}

func accessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
	}
	// Deprecated query-parameter form, still used by older clients.
	return r.URL.Query().Get("access_token")
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errcode":"M_UNKNOWN","error":"internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, e *api.Error) { writeJSON(w, e.Status, e.Body()) }

// readJSON decodes the request body into v. An empty body decodes as {}
// when allowEmpty is set.
func readJSON(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return api.TooLarge("request body too large")
		}
		return fmt.Errorf("httpapi: read body: %w", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		b = []byte("{}")
	}
	if !json.Valid(b) {
		return api.NotJSON("request body is not valid JSON")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return api.BadJSON("request body has the wrong shape")
	}
	return nil
}

// readObject reads a JSON object body as raw bytes (for content that is stored as is).
func readObject(r *http.Request) (json.RawMessage, error) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, api.TooLarge("request body too large")
		}
		return nil, fmt.Errorf("httpapi: read body: %w", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		b = []byte("{}")
	}
	if !json.Valid(b) {
		return nil, api.NotJSON("request body is not valid JSON")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, api.BadJSON("request body must be a JSON object")
	}
	return json.RawMessage(b), nil
}

// empty is the {} response body.
var empty = struct{}{}

// ---- rate limiting ----

type bucket struct {
	tokens float64
	last   time.Time
}

type limiter struct {
	mu      gosync.Mutex
	now     func() time.Time
	buckets map[string]*bucket
	sweep   time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, buckets: map[string]*bucket{}}
}

// allow takes one token from key's bucket; when empty it returns how long to wait.
func (l *limiter) allow(key string, lim RateLimit) (time.Duration, bool) {
	if lim.Rate <= 0 {
		return 0, true
	}
	burst := float64(max(lim.Burst, 1))
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.sweep) > time.Minute { // drop idle, full buckets
		for k, b := range l.buckets {
			if now.Sub(b.last).Seconds()*lim.Rate > burst {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*lim.Rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / lim.Rate * float64(time.Second)), false
}

// hashConcurrency is how many argon2id computations run at once: one per
// CPU. Hashing is CPU-bound, so more would not finish sooner, and each holds
// 19 MiB, which the garbage collector lets the heap double: with 4 at once
// on a 2-core machine, registration set the server's peak memory.
func hashConcurrency() int { return max(1, runtime.GOMAXPROCS(0)) }
