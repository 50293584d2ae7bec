package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"myelin/api"
	"myelin/server/auth"
	"myelin/server/rooms"
	"myelin/server/storage"
)

// supportedVersions are the spec versions advertised by /versions. Clients
// switch features on by version: v1.4 makes js-sdk assume server-side threads
// (/v1/rooms/{id}/threads, relations), v1.7 makes mautrix use asynchronous media
// upload and v1.11 authenticated media, none of which myelind serves yet, so
// the list stops at v1.3 (Element needs any of v1.1-v1.13).
var supportedVersions = []string{"r0.5.0", "r0.6.0", "r0.6.1", "v1.1", "v1.2", "v1.3"}

func (s *Server) routes() {
	s.handle("GET", "/_matrix/client/versions", authNone, s.versions)
	s.handle("GET", "/.well-known/matrix/client", authNone, s.wellKnown)
	s.client("GET", "/capabilities", authRequired, s.capabilities)
	s.client("GET", "/login", authNone, s.loginFlows)
	s.client("POST", "/login", authNone, s.login)
	s.client("POST", "/register", authNone, s.register)
	s.client("GET", "/register/available", authNone, s.registerAvailable)
	s.clientV1("GET", "/register/m.login.registration_token/validity", authNone, s.registrationTokenValidity)
	s.client("POST", "/logout", authRequired, s.logout)
	s.client("POST", "/logout/all", authRequired, s.logoutAll)
	s.client("GET", "/account/whoami", authRequired, s.whoami)
	s.client("POST", "/account/password", authRequired, s.changePassword)
	s.client("POST", "/account/deactivate", authRequired, s.deactivate)
	s.client("GET", "/account/3pid", authRequired, func(*http.Request) (any, error) { return map[string]any{"threepids": []any{}}, nil })
	s.client("GET", "/devices", authRequired, s.listDevices)
	s.client("GET", "/devices/{deviceId}", authRequired, s.getDevice)
	s.client("PUT", "/devices/{deviceId}", authRequired, s.renameDevice)
	s.client("DELETE", "/devices/{deviceId}", authRequired, s.deleteDevice)
	s.client("POST", "/delete_devices", authRequired, s.deleteDevices)
	s.client("GET", "/profile/{userId}", authOptional, s.getProfile)
	s.client("GET", "/profile/{userId}/{field}", authOptional, s.getProfileField)
	s.client("PUT", "/profile/{userId}/{field}", authRequired, s.putProfileField)
	s.client("POST", "/user/{userId}/filter", authRequired, s.postFilter)
	s.client("GET", "/user/{userId}/filter/{filterId}", authRequired, s.getFilter)
	s.client("GET", "/user/{userId}/account_data/{type}", authRequired, s.getAccountData)
	s.client("PUT", "/user/{userId}/account_data/{type}", authRequired, s.putAccountData)
	s.client("GET", "/user/{userId}/rooms/{roomId}/account_data/{type}", authRequired, s.getAccountData)
	s.client("PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}", authRequired, s.putAccountData)
	s.client("GET", "/user/{userId}/rooms/{roomId}/tags", authRequired, s.getTags)
	s.client("PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}", authRequired, s.putTag)
	s.client("DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}", authRequired, s.deleteTag)
	s.pushRoutes()
	s.client("GET", "/pushers", authRequired, func(*http.Request) (any, error) { return map[string]any{"pushers": []any{}}, nil })
	s.client("POST", "/pushers/set", authRequired, func(*http.Request) (any, error) { return empty, nil })
	s.client("GET", "/voip/turnServer", authRequired, func(*http.Request) (any, error) { return empty, nil })
	s.client("GET", "/thirdparty/protocols", authRequired, func(*http.Request) (any, error) { return empty, nil })
	s.client("GET", "/presence/{userId}/status", authRequired, s.getPresence)
	s.client("PUT", "/presence/{userId}/status", authRequired, s.putPresence)
	s.client("POST", "/user_directory/search", authRequired, s.userDirectorySearch)
	s.roomRoutes()
	s.syncRoutes()
	s.mediaRoutes()
}

func (s *Server) versions(*http.Request) (any, error) {
	return map[string]any{
		"versions":          supportedVersions,
		"unstable_features": map[string]bool{"org.matrix.e2e_cross_signing": true},
	}, nil
}

func (s *Server) wellKnown(r *http.Request) (any, error) {
	base := s.cfg.BaseURL
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return map[string]any{"m.homeserver": map[string]string{"base_url": base}}, nil
}

func (s *Server) capabilities(*http.Request) (any, error) {
	avail := map[string]string{}
	for _, v := range rooms.SupportedVersions() {
		avail[string(v)] = "stable"
	}
	return map[string]any{"capabilities": map[string]any{
		"m.change_password":  map[string]bool{"enabled": true},
		"m.room_versions":    map[string]any{"default": string(rooms.DefaultVersion), "available": avail},
		"m.set_displayname":  map[string]bool{"enabled": true},
		"m.set_avatar_url":   map[string]bool{"enabled": true},
		"m.3pid_changes":     map[string]bool{"enabled": false},
		"m.get_login_token":  map[string]bool{"enabled": false},
		"m.profile_fields":   map[string]bool{"enabled": false},
		"org.matrix.msc3244": map[string]any{},
	}}, nil
}

// ---- identifiers ----

var localpartRE = regexp.MustCompile(`^[a-z0-9._=\-/+]+$`)

// qualifyUser turns a localpart or full user ID into a full user ID of this server.
func (s *Server) qualifyUser(u string) string {
	if strings.HasPrefix(u, "@") {
		return u
	}
	return "@" + strings.ToLower(u) + ":" + s.cfg.ServerName
}

func (s *Server) validLocalpart(lp string) error {
	if lp == "" || !localpartRE.MatchString(lp) {
		return api.NewError(http.StatusBadRequest, api.ErrCodeInvalidUsername, "user ID may contain only a-z, 0-9, ., _, =, -, / and +")
	}
	if len("@"+lp+":"+s.cfg.ServerName) > 255 {
		return api.NewError(http.StatusBadRequest, api.ErrCodeInvalidUsername, "user ID too long")
	}
	return nil
}

func (s *Server) isLocalUser(userID string) bool {
	return strings.HasPrefix(userID, "@") && strings.HasSuffix(userID, ":"+s.cfg.ServerName)
}

// ---- passwords ----

func (s *Server) hashPassword(ctx context.Context, pw string) (string, error) {
	if len(pw) > auth.MaxPasswordBytes {
		return "", api.NewError(http.StatusBadRequest, api.ErrCodeWeakPassword, "password too long")
	}
	select {
	case s.hashSem <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.hashSem }()
	return auth.HashPassword(s.rand, pw)
}

// checkPassword verifies a user's password. Unknown users and users without a
// password fail without revealing which.
func (s *Server) checkPassword(r *http.Request, userID, pw string) (bool, error) {
	if len(pw) > auth.MaxPasswordBytes {
		return false, nil
	}
	u, err := s.store.User(r.Context(), userID)
	known := err == nil && u.PasswordHash != ""
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return false, err
	}
	if !known {
		// Hash anyway so that response time does not reveal whether the user exists.
		u.PasswordHash = s.dummyHash()
	}
	select {
	case s.hashSem <- struct{}{}:
	case <-r.Context().Done():
		return false, r.Context().Err()
	}
	defer func() { <-s.hashSem }()
	ok, err := auth.VerifyPassword(u.PasswordHash, pw)
	if err != nil {
		return false, err
	}
	return ok && known, nil
}

// dummyHash returns a hash that no password matches in practice, made once.
func (s *Server) dummyHash() string {
	s.dummyOnce.Do(func() {
		h, err := auth.HashPassword(s.rand, "myelin dummy password")
		if err == nil {
			s.dummy = h
		}
	})
	return s.dummy
}

// ---- register / login ----

func (s *Server) loginFlows(*http.Request) (any, error) {
	return map[string]any{"flows": []map[string]string{{"type": "m.login.password"}}}, nil
}

// checkDeviceID refuses device IDs that are malformed or equal to one of the
// user's cross-signing public keys (clients would confuse the two).
func (s *Server) checkDeviceID(ctx context.Context, userID, deviceID string) error {
	if len(deviceID) > 255 || strings.ContainsAny(deviceID, "\x00") {
		return api.InvalidParam("invalid device_id")
	}
	if s.e2ee.crossSigningKeyIDs == nil {
		return nil
	}
	ids, err := s.e2ee.crossSigningKeyIDs(ctx, userID)
	if err != nil {
		return err
	}
	if slices.Contains(ids, deviceID) {
		return api.Forbidden("device ID equals a cross-signing key ID")
	}
	return nil
}

type loginRequest struct {
	Type       string `json:"type"`
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
	User                     string `json:"user"`
	Password                 string `json:"password"`
	DeviceID                 string `json:"device_id"`
	InitialDeviceDisplayName string `json:"initial_device_display_name"`
}

func (s *Server) login(r *http.Request) (any, error) {
	var req loginRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Type != "m.login.password" {
		return nil, api.Unknown("unsupported login type")
	}
	user := req.Identifier.User
	if req.Identifier.Type != "" && req.Identifier.Type != "m.id.user" {
		return nil, api.Unknown("unsupported identifier type")
	}
	if user == "" {
		user = req.User
	}
	if user == "" {
		return nil, api.MissingParam("missing user identifier")
	}
	userID := s.qualifyUser(user)
	ok, err := s.checkPassword(r, userID, req.Password)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, api.Forbidden("invalid username or password")
	}
	u, err := s.store.User(r.Context(), userID)
	if err != nil {
		return nil, err
	}
	if u.Deactivated {
		return nil, api.NewError(http.StatusForbidden, api.ErrCodeUserDeactivated, "account deactivated")
	}
	return s.issueSession(r, userID, req.DeviceID, req.InitialDeviceDisplayName, nil)
}

// issueSession creates a device and token. With create set, the user is
// created in the same transaction.
func (s *Server) issueSession(r *http.Request, userID, deviceID, displayName string, create *storage.User) (any, error) {
	if deviceID == "" {
		var err error
		if deviceID, err = auth.NewDeviceID(s.rand); err != nil {
			return nil, err
		}
	} else if err := s.checkDeviceID(r.Context(), userID, deviceID); err != nil {
		return nil, err
	}
	tok, err := auth.NewAccessToken(s.rand)
	if err != nil {
		return nil, err
	}
	dev := storage.Device{UserID: userID, DeviceID: deviceID, DisplayName: displayName, CreatedTS: s.now().UnixMilli(), LastSeenIP: clientIP(r)}
	if create != nil {
		err = s.store.CreateUser(r.Context(), *create, &dev, auth.HashToken(tok))
	} else {
		err = s.store.Login(r.Context(), dev, auth.HashToken(tok))
	}
	if errors.Is(err, storage.ErrExists) {
		return nil, api.NewError(http.StatusBadRequest, api.ErrCodeUserInUse, "user ID already taken")
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"user_id": userID, "access_token": tok, "device_id": deviceID, "home_server": s.cfg.ServerName}, nil
}

type registerRequest struct {
	Username                 string          `json:"username"`
	Password                 string          `json:"password"`
	DeviceID                 string          `json:"device_id"`
	InitialDeviceDisplayName string          `json:"initial_device_display_name"`
	InhibitLogin             bool            `json:"inhibit_login"`
	Auth                     json.RawMessage `json:"auth"`
}

func (s *Server) registrationFlows() [][]string {
	if s.cfg.Registration == RegistrationToken {
		return [][]string{{"m.login.registration_token", "m.login.dummy"}, {"m.login.registration_token"}}
	}
	return [][]string{{"m.login.dummy"}}
}

func (s *Server) register(r *http.Request) (any, error) {
	if k := r.URL.Query().Get("kind"); k != "" && k != "user" {
		return nil, api.NewError(http.StatusForbidden, api.ErrCodeForbidden, "guest access is disabled")
	}
	if s.cfg.Registration == RegistrationDisabled {
		return nil, api.Forbidden("registration is disabled")
	}
	var req registerRequest
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	lp := strings.ToLower(req.Username)
	if lp != "" {
		if err := s.validLocalpart(lp); err != nil {
			return nil, err
		}
		if _, err := s.store.User(r.Context(), s.qualifyUser(lp)); err == nil {
			return nil, api.NewError(http.StatusBadRequest, api.ErrCodeUserInUse, "user ID already taken")
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, err
		}
	}
	if err := s.checkUIA(r, req.Auth, uiaParams{flows: s.registrationFlows(), bind: "POST /register", regToks: s.cfg.RegistrationTokens}); err != nil {
		return nil, err
	}
	if lp == "" {
		var err error
		if lp, err = auth.RandomString(s.rand, 12, "abcdefghijklmnopqrstuvwxyz0123456789"); err != nil {
			return nil, err
		}
	}
	userID := s.qualifyUser(lp)
	hash := ""
	if req.Password != "" {
		var err error
		if hash, err = s.hashPassword(r.Context(), req.Password); err != nil {
			return nil, err
		}
	}
	// The localpart is the initial display name, as Synapse does: member
	// events then carry a displayname, which some clients (matrix-nio's
	// joined_members) require although the spec makes it optional.
	u := storage.User{UserID: userID, PasswordHash: hash, DisplayName: lp, CreatedTS: s.now().UnixMilli()}
	if req.InhibitLogin {
		if err := s.store.CreateUser(r.Context(), u, nil, nil); errors.Is(err, storage.ErrExists) {
			return nil, api.NewError(http.StatusBadRequest, api.ErrCodeUserInUse, "user ID already taken")
		} else if err != nil {
			return nil, err
		}
		s.finishUIA(req.Auth)
		return map[string]any{"user_id": userID, "home_server": s.cfg.ServerName}, nil
	}
	resp, err := s.issueSession(r, userID, req.DeviceID, req.InitialDeviceDisplayName, &u)
	if err == nil {
		s.finishUIA(req.Auth)
	}
	return resp, err
}

func (s *Server) registerAvailable(r *http.Request) (any, error) {
	if s.cfg.Registration == RegistrationDisabled {
		return nil, api.Forbidden("registration is disabled")
	}
	lp := strings.ToLower(r.URL.Query().Get("username"))
	if err := s.validLocalpart(lp); err != nil {
		return nil, err
	}
	_, err := s.store.User(r.Context(), s.qualifyUser(lp))
	if err == nil {
		return nil, api.NewError(http.StatusBadRequest, api.ErrCodeUserInUse, "user ID already taken")
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	return map[string]bool{"available": true}, nil
}

func (s *Server) registrationTokenValidity(r *http.Request) (any, error) {
	if s.cfg.Registration == RegistrationDisabled {
		return nil, api.Forbidden("registration is disabled")
	}
	t := r.URL.Query().Get("token")
	return map[string]bool{"valid": t != "" && slices.Contains(s.cfg.RegistrationTokens, t)}, nil
}

func (s *Server) logout(r *http.Request) (any, error) {
	sess := mustSession(r)
	return empty, s.store.DeleteDevices(r.Context(), sess.UserID, []string{sess.DeviceID})
}

func (s *Server) logoutAll(r *http.Request) (any, error) {
	return empty, s.store.DeleteDevices(r.Context(), mustSession(r).UserID, nil)
}

func (s *Server) whoami(r *http.Request) (any, error) {
	sess := mustSession(r)
	return map[string]any{"user_id": sess.UserID, "device_id": sess.DeviceID, "is_guest": false}, nil
}

func (s *Server) changePassword(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req struct {
		NewPassword   string          `json:"new_password"`
		LogoutDevices *bool           `json:"logout_devices"`
		Auth          json.RawMessage `json:"auth"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if err := s.checkUIA(r, req.Auth, uiaParams{flows: [][]string{{"m.login.password"}}, bind: "POST /account/password " + sess.UserID, userID: sess.UserID}); err != nil {
		return nil, err
	}
	if req.NewPassword == "" {
		return nil, api.MissingParam("missing new_password")
	}
	hash, err := s.hashPassword(r.Context(), req.NewPassword)
	if err != nil {
		return nil, err
	}
	if err := s.store.SetPasswordHash(r.Context(), sess.UserID, hash); err != nil {
		return nil, err
	}
	s.finishUIA(req.Auth)
	if req.LogoutDevices == nil || *req.LogoutDevices {
		devs, err := s.store.Devices(r.Context(), sess.UserID)
		if err != nil {
			return nil, err
		}
		var others []string
		for _, d := range devs {
			if d.DeviceID != sess.DeviceID {
				others = append(others, d.DeviceID)
			}
		}
		if len(others) > 0 {
			if err := s.store.DeleteDevices(r.Context(), sess.UserID, others); err != nil {
				return nil, err
			}
		}
	}
	return empty, nil
}

// deactivate leaves every room, deletes every device and disables the
// account for good (after UIA with the password).
func (s *Server) deactivate(r *http.Request) (any, error) {
	sess := mustSession(r)
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if err := s.checkUIA(r, req.Auth, uiaParams{flows: [][]string{{"m.login.password"}}, bind: "POST /account/deactivate " + sess.UserID, userID: sess.UserID}); err != nil {
		return nil, err
	}
	ms, err := s.store.UserMemberships(r.Context(), sess.UserID)
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Membership == rooms.MembershipJoin || m.Membership == rooms.MembershipInvite {
			if err := s.setMembership(r.Context(), m.RoomID, sess.UserID, sess.UserID, rooms.MembershipLeave, "", nil); err != nil {
				s.log.Warn("deactivate: leave room", "room_id", m.RoomID, "err", err)
			}
		}
	}
	if err := s.store.Deactivate(r.Context(), sess.UserID); err != nil {
		return nil, err
	}
	if err := s.store.DeleteDevices(r.Context(), sess.UserID, nil); err != nil {
		return nil, err
	}
	s.finishUIA(req.Auth)
	return map[string]string{"id_server_unbind_result": "no-support"}, nil
}

// ---- devices ----

func deviceJSON(d storage.Device) map[string]any {
	m := map[string]any{"device_id": d.DeviceID, "display_name": d.DisplayName}
	if d.LastSeenTS != 0 {
		m["last_seen_ts"] = d.LastSeenTS
	}
	if d.LastSeenIP != "" {
		m["last_seen_ip"] = d.LastSeenIP
	}
	return m
}

func (s *Server) listDevices(r *http.Request) (any, error) {
	devs, err := s.store.Devices(r.Context(), mustSession(r).UserID)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(devs))
	for _, d := range devs {
		out = append(out, deviceJSON(d))
	}
	return map[string]any{"devices": out}, nil
}

func (s *Server) getDevice(r *http.Request) (any, error) {
	d, err := s.store.Device(r.Context(), mustSession(r).UserID, r.PathValue("deviceId"))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("unknown device")
	}
	if err != nil {
		return nil, err
	}
	return deviceJSON(d), nil
}

func (s *Server) renameDevice(r *http.Request) (any, error) {
	var req struct {
		DisplayName *string `json:"display_name"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	sess := mustSession(r)
	if req.DisplayName == nil {
		if _, err := s.store.Device(r.Context(), sess.UserID, r.PathValue("deviceId")); err != nil {
			return nil, api.NotFound("unknown device")
		}
		return empty, nil
	}
	if len(*req.DisplayName) > 1024 {
		return nil, api.InvalidParam("display_name too long")
	}
	err := s.store.RenameDevice(r.Context(), sess.UserID, r.PathValue("deviceId"), *req.DisplayName)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("unknown device")
	}
	if err == nil && s.e2ee.deviceChanged != nil {
		// The display name is part of the device keys others see in
		// /keys/query (unsigned.device_display_name): a device-list change.
		err = s.e2ee.deviceChanged(r.Context(), sess.UserID)
	}
	return empty, err
}

func (s *Server) deleteDevice(r *http.Request) (any, error) {
	var req struct {
		Auth json.RawMessage `json:"auth"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	return s.deleteDevicesUIA(r, req.Auth, []string{r.PathValue("deviceId")}, "DELETE /devices/"+r.PathValue("deviceId"))
}

func (s *Server) deleteDevices(r *http.Request) (any, error) {
	var req struct {
		Devices []string        `json:"devices"`
		Auth    json.RawMessage `json:"auth"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Devices == nil {
		return nil, api.MissingParam("missing devices")
	}
	slices.Sort(req.Devices)
	return s.deleteDevicesUIA(r, req.Auth, req.Devices, "POST /delete_devices "+strings.Join(req.Devices, ","))
}

func (s *Server) deleteDevicesUIA(r *http.Request, rawAuth json.RawMessage, ids []string, bind string) (any, error) {
	sess := mustSession(r)
	if err := s.checkUIA(r, rawAuth, uiaParams{flows: [][]string{{"m.login.password"}}, bind: bind + " " + sess.UserID, userID: sess.UserID}); err != nil {
		return nil, err
	}
	if len(ids) > 0 {
		if err := s.store.DeleteDevices(r.Context(), sess.UserID, ids); err != nil {
			return nil, err
		}
	}
	s.finishUIA(rawAuth)
	return empty, nil
}

// ---- profile ----

func (s *Server) getProfile(r *http.Request) (any, error) {
	u, err := s.store.User(r.Context(), r.PathValue("userId"))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("unknown user")
	}
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if u.DisplayName != "" {
		out["displayname"] = u.DisplayName
	}
	if u.AvatarURL != "" {
		out["avatar_url"] = u.AvatarURL
	}
	return out, nil
}

func (s *Server) getProfileField(r *http.Request) (any, error) {
	f := r.PathValue("field")
	if f != "displayname" && f != "avatar_url" {
		return nil, api.NotFound("unknown profile field")
	}
	p, err := s.getProfile(r)
	if err != nil {
		return nil, err
	}
	v, ok := p.(map[string]any)[f]
	if !ok {
		return nil, api.NotFound("profile field not set")
	}
	return map[string]any{f: v}, nil
}

func (s *Server) putProfileField(r *http.Request) (any, error) {
	sess := mustSession(r)
	if r.PathValue("userId") != sess.UserID {
		return nil, api.Forbidden("cannot change another user's profile")
	}
	f := r.PathValue("field")
	if f != "displayname" && f != "avatar_url" {
		return nil, api.NewError(http.StatusBadRequest, api.ErrCodeUnrecognized, "unknown profile field")
	}
	var req map[string]any
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	v, _ := req[f].(string)
	if len(v) > 1024 {
		return nil, api.NewError(http.StatusBadRequest, "M_PROFILE_TOO_LARGE", "profile field too long")
	}
	var dn, av *string
	if f == "displayname" {
		dn = &v
	} else {
		av = &v
	}
	if err := s.store.SetProfile(r.Context(), sess.UserID, dn, av); err != nil {
		return nil, err
	}
	s.updateMemberProfiles(r, sess.UserID)
	return empty, nil
}

// ---- filters and account data ----

func (s *Server) ownUser(r *http.Request) (Session, error) {
	sess := mustSession(r)
	if r.PathValue("userId") != sess.UserID {
		return sess, api.Forbidden("cannot access another user's data")
	}
	return sess, nil
}

func (s *Server) postFilter(r *http.Request) (any, error) {
	sess, err := s.ownUser(r)
	if err != nil {
		return nil, err
	}
	raw, err := readObject(r)
	if err != nil {
		return nil, err
	}
	if len(raw) > 64<<10 {
		return nil, api.TooLarge("filter too large")
	}
	var f api.Filter
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, api.BadJSON("invalid filter")
	}
	id, err := s.store.PutFilter(r.Context(), sess.UserID, raw)
	if err != nil {
		return nil, err
	}
	return map[string]string{"filter_id": id}, nil
}

func (s *Server) getFilter(r *http.Request) (any, error) {
	sess, err := s.ownUser(r)
	if err != nil {
		return nil, err
	}
	f, err := s.store.Filter(r.Context(), sess.UserID, r.PathValue("filterId"))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("unknown filter")
	}
	return f, err
}

func validRoomID(id string) bool {
	return strings.HasPrefix(id, "!") && strings.Contains(id, ":") && len(id) <= 255
}

func (s *Server) getAccountData(r *http.Request) (any, error) {
	sess, err := s.ownUser(r)
	if err != nil {
		return nil, err
	}
	roomID := r.PathValue("roomId")
	if r.PathValue("roomId") != "" && !validRoomID(roomID) {
		return nil, api.InvalidParam("invalid room ID")
	}
	c, err := s.store.AccountData(r.Context(), sess.UserID, roomID, r.PathValue("type"))
	if errors.Is(err, storage.ErrNotFound) {
		if r.PathValue("type") == "m.push_rules" && roomID == "" {
			return s.pushRules(r.Context(), sess.UserID)
		}
		return nil, api.NotFound("account data not found")
	}
	return c, err
}

func (s *Server) putAccountData(r *http.Request) (any, error) {
	sess, err := s.ownUser(r)
	if err != nil {
		return nil, err
	}
	roomID, typ := r.PathValue("roomId"), r.PathValue("type")
	if roomID != "" && !validRoomID(roomID) {
		return nil, api.InvalidParam("invalid room ID")
	}
	if typ == "m.fully_read" || typ == "m.push_rules" {
		return nil, api.NewError(http.StatusMethodNotAllowed, api.ErrCodeBadJSON, "this account data type is managed by the server")
	}
	if len(typ) > 255 || typ == "" {
		return nil, api.InvalidParam("invalid type")
	}
	c, err := readObject(r)
	if err != nil {
		return nil, err
	}
	if len(c) > 256<<10 {
		return nil, api.TooLarge("account data too large")
	}
	_, err = s.store.PutAccountData(r.Context(), sess.UserID, roomID, typ, c)
	return empty, err
}

func (s *Server) getTags(r *http.Request) (any, error) {
	sess, err := s.ownUser(r)
	if err != nil {
		return nil, err
	}
	c, err := s.store.AccountData(r.Context(), sess.UserID, r.PathValue("roomId"), "m.tag")
	if errors.Is(err, storage.ErrNotFound) {
		return map[string]any{"tags": map[string]any{}}, nil
	}
	return c, err
}

func (s *Server) modifyTags(r *http.Request, fn func(tags map[string]json.RawMessage)) (any, error) {
	sess, err := s.ownUser(r)
	if err != nil {
		return nil, err
	}
	roomID := r.PathValue("roomId")
	var cur struct {
		Tags map[string]json.RawMessage `json:"tags"`
	}
	c, err := s.store.AccountData(r.Context(), sess.UserID, roomID, "m.tag")
	if err == nil {
		_ = json.Unmarshal(c, &cur)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if cur.Tags == nil {
		cur.Tags = map[string]json.RawMessage{}
	}
	fn(cur.Tags)
	b, _ := json.Marshal(cur)
	_, err = s.store.PutAccountData(r.Context(), sess.UserID, roomID, "m.tag", b)
	return empty, err
}

func (s *Server) putTag(r *http.Request) (any, error) {
	body, err := readObject(r)
	if err != nil {
		return nil, err
	}
	return s.modifyTags(r, func(t map[string]json.RawMessage) { t[r.PathValue("tag")] = body })
}

func (s *Server) deleteTag(r *http.Request) (any, error) {
	return s.modifyTags(r, func(t map[string]json.RawMessage) { delete(t, r.PathValue("tag")) })
}

// ---- presence and directory (minimal) ----

func (s *Server) getPresence(r *http.Request) (any, error) {
	return map[string]any{"presence": "online", "currently_active": true}, nil
}

func (s *Server) putPresence(r *http.Request) (any, error) {
	if _, err := s.ownUser(r); err != nil {
		return nil, err
	}
	return empty, nil
}

func (s *Server) userDirectorySearch(r *http.Request) (any, error) {
	var req struct {
		SearchTerm string `json:"search_term"`
		Limit      int    `json:"limit"`
	}
	if err := readJSON(r, &req); err != nil {
		return nil, err
	}
	if req.Limit <= 0 || req.Limit > 50 {
		req.Limit = 10
	}
	users, err := s.store.UsersSharingRooms(r.Context(), mustSession(r).UserID)
	if err != nil {
		return nil, err
	}
	term := strings.ToLower(req.SearchTerm)
	results := []map[string]any{}
	for _, u := range users {
		p, err := s.store.User(r.Context(), u)
		if err != nil {
			continue
		}
		if !strings.Contains(strings.ToLower(u), term) && !strings.Contains(strings.ToLower(p.DisplayName), term) {
			continue
		}
		m := map[string]any{"user_id": u}
		if p.DisplayName != "" {
			m["display_name"] = p.DisplayName
		}
		if p.AvatarURL != "" {
			m["avatar_url"] = p.AvatarURL
		}
		results = append(results, m)
		if len(results) >= req.Limit {
			return map[string]any{"results": results, "limited": true}, nil
		}
	}
	return map[string]any{"results": results, "limited": false}, nil
}
