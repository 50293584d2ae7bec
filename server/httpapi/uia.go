package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	gosync "sync"
	"time"

	"myelin/api"
	"myelin/server/auth"
)

// User-interactive authentication
// (https://spec.matrix.org/v1.16/client-server-api/#user-interactive-authentication-api).

const uiaTTL = 10 * time.Minute

type uiaSession struct {
	id        string
	boundTo   string // method + path (+ user): a session authorises only the call it was opened for
	completed []string
	created   time.Time
}

type uiaStore struct {
	mu       gosync.Mutex
	sessions map[string]*uiaSession
}

func newUIAStore() *uiaStore { return &uiaStore{sessions: map[string]*uiaSession{}} }

// uiaChallenge is an error carrying a 401 UIA body.
type uiaChallenge struct{ body map[string]any }

func (u *uiaChallenge) Error() string { return "httpapi: user-interactive auth required" }

// uiaAuth is the "auth" object of a UIA request.
type uiaAuth struct {
	Type       string `json:"type"`
	Session    string `json:"session"`
	Token      string `json:"token"`
	Password   string `json:"password"`
	User       string `json:"user"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
}

// uiaParams describes one UIA-protected call.
type uiaParams struct {
	flows   [][]string
	bind    string // method+path+user
	userID  string // for m.login.password: whose password
	regToks []string
	params  map[string]any
}

// check runs one UIA round. rawAuth is the request's "auth" value (nil if
// absent). It returns nil when a flow is complete, else a *uiaChallenge or *api.Error.
func (s *Server) checkUIA(r *http.Request, rawAuth json.RawMessage, p uiaParams) error {
	st := s.uia
	now := s.now()
	challenge := func(sess *uiaSession, errcode, msg string) error {
		flows := make([]map[string]any, 0, len(p.flows))
		for _, f := range p.flows {
			flows = append(flows, map[string]any{"stages": f})
		}
		params := p.params
		if params == nil {
			params = map[string]any{}
		}
		body := map[string]any{"flows": flows, "params": params, "session": sess.id}
		if len(sess.completed) > 0 {
			body["completed"] = sess.completed
		}
		if errcode != "" {
			body["errcode"] = errcode
			body["error"] = msg
		}
		return &uiaChallenge{body: body}
	}
	newSession := func() (*uiaSession, error) {
		id, err := auth.RandomString(s.rand, 24, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
		if err != nil {
			return nil, err
		}
		sess := &uiaSession{id: id, boundTo: p.bind, created: now}
		st.mu.Lock()
		for k, v := range st.sessions {
			if now.Sub(v.created) > uiaTTL {
				delete(st.sessions, k)
			}
		}
		st.sessions[id] = sess
		st.mu.Unlock()
		return sess, nil
	}
	var a uiaAuth
	if len(rawAuth) > 0 && string(rawAuth) != "null" {
		if err := json.Unmarshal(rawAuth, &a); err != nil {
			return api.BadJSON("auth must be an object")
		}
	}
	var sess *uiaSession
	if a.Session != "" {
		st.mu.Lock()
		sess = st.sessions[a.Session]
		st.mu.Unlock()
		if sess == nil || now.Sub(sess.created) > uiaTTL {
			return api.NewError(http.StatusUnauthorized, api.ErrCodeUnknown, "unknown or expired auth session")
		}
		if sess.boundTo != p.bind {
			// A session completed for one call must not authorise another.
			return api.Forbidden("auth session belongs to another request")
		}
	} else {
		var err error
		if sess, err = newSession(); err != nil {
			return err
		}
	}
	if a.Type != "" {
		if !slices.Contains(sess.completed, a.Type) {
			if !slices.ContainsFunc(p.flows, func(f []string) bool { return slices.Contains(f, a.Type) }) {
				return challenge(sess, api.ErrCodeUnknown, "unsupported auth type")
			}
			switch a.Type {
			case "m.login.dummy":
			case "m.login.registration_token":
				if !slices.Contains(p.regToks, a.Token) || a.Token == "" {
					return challenge(sess, api.ErrCodeForbidden, "invalid registration token")
				}
			case "m.login.password":
				user := a.Identifier.User
				if user == "" {
					user = a.User
				}
				if s.qualifyUser(user) != p.userID {
					return challenge(sess, api.ErrCodeForbidden, "invalid password")
				}
				ok, err := s.checkPassword(r, p.userID, a.Password)
				if err != nil {
					return err
				}
				if !ok {
					return challenge(sess, api.ErrCodeForbidden, "invalid password")
				}
			default:
				return challenge(sess, api.ErrCodeUnknown, "unsupported auth type")
			}
			st.mu.Lock()
			sess.completed = append(sess.completed, a.Type)
			st.mu.Unlock()
		}
	}
	for _, f := range p.flows {
		done := true
		for _, stage := range f {
			if !slices.Contains(sess.completed, stage) {
				done = false
				break
			}
		}
		if done {
			return nil
		}
	}
	return challenge(sess, "", "")
}

// finishUIA forgets a session once the protected call succeeded.
func (s *Server) finishUIA(rawAuth json.RawMessage) {
	var a uiaAuth
	if json.Unmarshal(rawAuth, &a) == nil && a.Session != "" {
		s.uia.mu.Lock()
		delete(s.uia.sessions, a.Session)
		s.uia.mu.Unlock()
	}
}
