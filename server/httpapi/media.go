package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"myelin/api"
	"myelin/server/auth"
	"myelin/server/storage"
)

// Content repository (https://spec.matrix.org/v1.16/client-server-api/#content-repository):
// upload, download, thumbnail (the original is returned) and config. Files
// live in Config.MediaDir; media of other servers is not fetched.

// rawResponse is a non-JSON response body.
type rawResponse struct {
	header http.Header
	body   io.ReadCloser
}

var mediaIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)

// inlineTypes may be shown inline by browsers; everything else is an attachment.
var inlineTypes = map[string]bool{
	"text/css": true, "text/plain": true, "text/csv": true, "application/json": true, "application/ld+json": true,
	"image/jpeg": true, "image/gif": true, "image/png": true, "image/apng": true, "image/webp": true, "image/avif": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"audio/mp4": true, "audio/webm": true, "audio/aac": true, "audio/mpeg": true, "audio/ogg": true, "audio/wave": true,
	"audio/wav": true, "audio/x-wav": true, "audio/x-pn-wav": true, "audio/flac": true, "audio/x-flac": true,
}

func (s *Server) mediaRoutes() {
	if s.cfg.MediaDir == "" {
		return
	}
	up := s.rt.add("POST", "/_matrix/media/v3/upload", authRequired, s.upload)
	up.maxBody = s.cfg.MaxUploadBytes
	up = s.rt.add("POST", "/_matrix/media/r0/upload", authRequired, s.upload)
	up.maxBody = s.cfg.MaxUploadBytes
	cfg := func(*http.Request) (any, error) { return map[string]any{"m.upload.size": s.cfg.MaxUploadBytes}, nil }
	s.clientV1("GET", "/media/config", authRequired, cfg)
	s.clientV1("GET", "/media/download/{serverName}/{mediaId}", authRequired, s.download)
	s.clientV1("GET", "/media/download/{serverName}/{mediaId}/{fileName}", authRequired, s.download)
	s.clientV1("GET", "/media/thumbnail/{serverName}/{mediaId}", authRequired, s.download)
	for _, v := range []string{"v3", "r0"} {
		p := "/_matrix/media/" + v
		s.handle("GET", p+"/config", authRequired, cfg)
		s.handle("GET", p+"/download/{serverName}/{mediaId}", authNone, s.download)
		s.handle("GET", p+"/download/{serverName}/{mediaId}/{fileName}", authNone, s.download)
		s.handle("GET", p+"/thumbnail/{serverName}/{mediaId}", authNone, s.download)
	}
}

func (s *Server) upload(r *http.Request) (any, error) {
	sess := mustSession(r)
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	if len(ct) > 255 {
		return nil, api.InvalidParam("content type too long")
	}
	name := r.URL.Query().Get("filename")
	if len(name) > 255 {
		return nil, api.InvalidParam("filename too long")
	}
	id, err := auth.RandomString(s.rand, 24, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(s.cfg.MediaDir, 0o700); err != nil {
		return nil, fmt.Errorf("httpapi: media dir: %w", err)
	}
	tmp, err := os.CreateTemp(s.cfg.MediaDir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("httpapi: media temp file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	n, err := io.Copy(tmp, r.Body)
	if err == nil {
		err = tmp.Sync() // durable before we acknowledge
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, api.TooLarge("upload too large")
		}
		return nil, fmt.Errorf("httpapi: write upload: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.cfg.MediaDir, id)); err != nil {
		return nil, fmt.Errorf("httpapi: store upload: %w", err)
	}
	if d, err := os.Open(s.cfg.MediaDir); err == nil {
		d.Sync() // make the rename durable
		d.Close()
	}
	if err := s.store.PutMedia(r.Context(), storage.Media{MediaID: id, ContentType: ct, Filename: name, Size: n, Uploader: sess.UserID, CreatedTS: s.now().UnixMilli()}); err != nil {
		return nil, err
	}
	return map[string]string{"content_uri": "mxc://" + s.cfg.ServerName + "/" + id}, nil
}

func (s *Server) download(r *http.Request) (any, error) {
	id := r.PathValue("mediaId")
	if r.PathValue("serverName") != s.cfg.ServerName || !mediaIDRE.MatchString(id) {
		return nil, api.NotFound("media not found")
	}
	m, err := s.store.Media(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, api.NotFound("media not found")
	}
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.cfg.MediaDir, id))
	if err != nil {
		return nil, api.NotFound("media not found")
	}
	h := http.Header{}
	h.Set("Content-Type", m.ContentType)
	h.Set("Content-Length", fmt.Sprint(m.Size))
	base, _, _ := mime.ParseMediaType(m.ContentType)
	disp := "attachment"
	if inlineTypes[strings.ToLower(base)] {
		disp = "inline"
	}
	name := r.PathValue("fileName")
	if name == "" {
		name = m.Filename
	}
	if name != "" {
		disp = mime.FormatMediaType(disp, map[string]string{"filename": name})
		if disp == "" {
			disp = "attachment"
		}
	}
	h.Set("Content-Disposition", disp)
	// Served content must never run as part of a web page of this origin.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; media-src 'self'; object-src 'self';")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	return &rawResponse{header: h, body: f}, nil
}
