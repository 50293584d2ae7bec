package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"myelin/api"
	"myelin/server/storage"
)

// Push rules (https://spec.matrix.org/v1.16/client-server-api/#push-rules),
// stored as the server-managed m.push_rules account data.

var pushKinds = []string{"override", "content", "room", "sender", "underride"}

type pushRule struct {
	RuleID     string           `json:"rule_id"`
	Default    bool             `json:"default"`
	Enabled    bool             `json:"enabled"`
	Conditions []map[string]any `json:"conditions,omitempty"`
	Pattern    string           `json:"pattern,omitempty"`
	Actions    []any            `json:"actions"`
}

type ruleset map[string][]pushRule

func cond(kind string, kv ...any) map[string]any {
	m := map[string]any{"kind": kind}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

var (
	notify       = []any{"notify"}
	soundDefault = map[string]any{"set_tweak": "sound", "value": "default"}
	highlight    = map[string]any{"set_tweak": "highlight"}
)

// defaultPushRules is the spec's predefined rule set for userID.
func defaultPushRules(userID string) ruleset {
	r := func(id string, conds []map[string]any, actions ...any) pushRule {
		if actions == nil {
			actions = []any{}
		}
		return pushRule{RuleID: id, Default: true, Enabled: true, Conditions: conds, Actions: actions}
	}
	master := r(".m.rule.master", []map[string]any{})
	master.Enabled = false
	return ruleset{
		"override": {
			master,
			r(".m.rule.suppress_notices", []map[string]any{cond("event_match", "key", "content.msgtype", "pattern", "m.notice")}),
			r(".m.rule.invite_for_me", []map[string]any{cond("event_match", "key", "type", "pattern", "m.room.member"),
				cond("event_match", "key", "content.membership", "pattern", "invite"),
				cond("event_match", "key", "state_key", "pattern", userID)}, "notify", soundDefault),
			r(".m.rule.member_event", []map[string]any{cond("event_match", "key", "type", "pattern", "m.room.member")}),
			r(".m.rule.is_user_mention", []map[string]any{cond("event_property_contains", "key", `content.m\.mentions.user_ids`, "value", userID)},
				"notify", soundDefault, highlight),
			r(".m.rule.is_room_mention", []map[string]any{cond("event_property_is", "key", `content.m\.mentions.room`, "value", true),
				cond("sender_notification_permission", "key", "room")}, "notify", highlight),
			r(".m.rule.tombstone", []map[string]any{cond("event_match", "key", "type", "pattern", "m.room.tombstone"),
				cond("event_match", "key", "state_key", "pattern", "")}, "notify", highlight),
			r(".m.rule.reaction", []map[string]any{cond("event_match", "key", "type", "pattern", "m.reaction")}),
			r(".m.rule.room.server_acl", []map[string]any{cond("event_match", "key", "type", "pattern", "m.room.server_acl"),
				cond("event_match", "key", "state_key", "pattern", "")}),
			r(".m.rule.suppress_edits", []map[string]any{cond("event_property_is", "key", `content.m\.relates_to.rel_type`, "value", "m.replace")}),
		},
		"content": {},
		"room":    {},
		"sender":  {},
		"underride": {
			r(".m.rule.call", []map[string]any{cond("event_match", "key", "type", "pattern", "m.call.invite")},
				"notify", map[string]any{"set_tweak": "sound", "value": "ring"}),
			r(".m.rule.encrypted_room_one_to_one", []map[string]any{cond("room_member_count", "is", "2"),
				cond("event_match", "key", "type", "pattern", "m.room.encrypted")}, "notify", soundDefault),
			r(".m.rule.room_one_to_one", []map[string]any{cond("room_member_count", "is", "2"),
				cond("event_match", "key", "type", "pattern", "m.room.message")}, "notify", soundDefault),
			r(".m.rule.message", []map[string]any{cond("event_match", "key", "type", "pattern", "m.room.message")}, "notify"),
			r(".m.rule.encrypted", []map[string]any{cond("event_match", "key", "type", "pattern", "m.room.encrypted")}, "notify"),
		},
	}
}

func (s *Server) loadRules(ctx context.Context, userID string) (ruleset, error) {
	c, err := s.store.AccountData(ctx, userID, "", "m.push_rules")
	if errors.Is(err, storage.ErrNotFound) {
		return defaultPushRules(userID), nil
	}
	if err != nil {
		return nil, err
	}
	var wrap struct {
		Global ruleset `json:"global"`
	}
	if err := json.Unmarshal(c, &wrap); err != nil || wrap.Global == nil {
		return defaultPushRules(userID), nil
	}
	for _, k := range pushKinds {
		if wrap.Global[k] == nil {
			wrap.Global[k] = []pushRule{}
		}
	}
	return wrap.Global, nil
}

func (s *Server) saveRules(ctx context.Context, userID string, rs ruleset) error {
	b, err := json.Marshal(map[string]any{"global": rs})
	if err != nil {
		return err
	}
	_, err = s.store.PutAccountData(ctx, userID, "", "m.push_rules", b)
	return err
}

func (s *Server) pushRules(ctx context.Context, userID string) (any, error) {
	rs, err := s.loadRules(ctx, userID)
	if err != nil {
		return nil, err
	}
	return map[string]any{"global": rs}, nil
}

func (s *Server) pushRoutes() {
	s.client("GET", "/pushrules", authRequired, func(r *http.Request) (any, error) { return s.pushRules(r.Context(), mustSession(r).UserID) })
	s.client("GET", "/pushrules/global", authRequired, func(r *http.Request) (any, error) {
		return s.loadRules(r.Context(), mustSession(r).UserID)
	})
	s.client("GET", "/pushrules/global/{kind}/{ruleId}", authRequired, s.getPushRule)
	s.client("PUT", "/pushrules/global/{kind}/{ruleId}", authRequired, s.putPushRule)
	s.client("DELETE", "/pushrules/global/{kind}/{ruleId}", authRequired, s.deletePushRule)
	s.client("GET", "/pushrules/global/{kind}/{ruleId}/{attr}", authRequired, s.getPushRuleAttr)
	s.client("PUT", "/pushrules/global/{kind}/{ruleId}/{attr}", authRequired, s.putPushRuleAttr)
}

func findRule(rs ruleset, kind, id string) (int, error) {
	if !slices.Contains(pushKinds, kind) {
		return -1, api.InvalidParam("unknown push rule kind")
	}
	i := slices.IndexFunc(rs[kind], func(p pushRule) bool { return p.RuleID == id })
	if i < 0 {
		return -1, api.NotFound("unknown push rule")
	}
	return i, nil
}

func (s *Server) getPushRule(r *http.Request) (any, error) {
	rs, err := s.loadRules(r.Context(), mustSession(r).UserID)
	if err != nil {
		return nil, err
	}
	i, err := findRule(rs, r.PathValue("kind"), r.PathValue("ruleId"))
	if err != nil {
		return nil, err
	}
	return rs[r.PathValue("kind")][i], nil
}

func (s *Server) putPushRule(r *http.Request) (any, error) {
	userID := mustSession(r).UserID
	kind, id := r.PathValue("kind"), r.PathValue("ruleId")
	if !slices.Contains(pushKinds, kind) {
		return nil, api.InvalidParam("unknown push rule kind")
	}
	if len(id) == 0 || id[0] == '.' {
		return nil, api.InvalidParam("cannot create server-default rules")
	}
	var req struct {
		Actions    []any            `json:"actions"`
		Conditions []map[string]any `json:"conditions"`
		Pattern    string           `json:"pattern"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Actions == nil {
		return nil, api.MissingParam("missing actions")
	}
	rs, err := s.loadRules(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	rule := pushRule{RuleID: id, Enabled: true, Actions: req.Actions, Pattern: req.Pattern, Conditions: req.Conditions}
	switch kind {
	case "room", "sender":
		rule.Conditions = nil
	}
	list := slices.DeleteFunc(rs[kind], func(p pushRule) bool { return p.RuleID == id })
	at := 0
	// User rules go before the server-default ones of the same kind, or
	// relative to before/after when given.
	for at < len(list) && !list[at].Default {
		at++
	}
	q := r.URL.Query()
	if b := q.Get("before"); b != "" {
		if at = slices.IndexFunc(list, func(p pushRule) bool { return p.RuleID == b }); at < 0 {
			return nil, api.NotFound("unknown 'before' rule")
		}
	} else if a := q.Get("after"); a != "" {
		if at = slices.IndexFunc(list, func(p pushRule) bool { return p.RuleID == a }); at < 0 {
			return nil, api.NotFound("unknown 'after' rule")
		}
		at++
	}
	rs[kind] = slices.Insert(list, at, rule)
	return empty, s.saveRules(r.Context(), userID, rs)
}

func (s *Server) deletePushRule(r *http.Request) (any, error) {
	userID := mustSession(r).UserID
	rs, err := s.loadRules(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	kind := r.PathValue("kind")
	i, err := findRule(rs, kind, r.PathValue("ruleId"))
	if err != nil {
		return nil, err
	}
	if rs[kind][i].Default {
		return nil, api.Forbidden("cannot delete a server-default rule")
	}
	rs[kind] = slices.Delete(rs[kind], i, i+1)
	return empty, s.saveRules(r.Context(), userID, rs)
}

func (s *Server) getPushRuleAttr(r *http.Request) (any, error) {
	rs, err := s.loadRules(r.Context(), mustSession(r).UserID)
	if err != nil {
		return nil, err
	}
	kind := r.PathValue("kind")
	i, err := findRule(rs, kind, r.PathValue("ruleId"))
	if err != nil {
		return nil, err
	}
	switch r.PathValue("attr") {
	case "enabled":
		return map[string]bool{"enabled": rs[kind][i].Enabled}, nil
	case "actions":
		return map[string]any{"actions": rs[kind][i].Actions}, nil
	}
	return nil, api.Unrecognized(http.StatusNotFound)
}

func (s *Server) putPushRuleAttr(r *http.Request) (any, error) {
	userID := mustSession(r).UserID
	rs, err := s.loadRules(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	kind := r.PathValue("kind")
	i, err := findRule(rs, kind, r.PathValue("ruleId"))
	if err != nil {
		return nil, err
	}
	var req struct {
		Enabled *bool `json:"enabled"`
		Actions []any `json:"actions"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	switch r.PathValue("attr") {
	case "enabled":
		if req.Enabled == nil {
			return nil, api.MissingParam("missing enabled")
		}
		rs[kind][i].Enabled = *req.Enabled
	case "actions":
		if req.Actions == nil {
			return nil, api.MissingParam("missing actions")
		}
		rs[kind][i].Actions = req.Actions
	default:
		return nil, api.Unrecognized(http.StatusNotFound)
	}
	return empty, s.saveRules(r.Context(), userID, rs)
}
