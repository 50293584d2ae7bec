// Command myelind is the myelin homeserver: the Matrix client-server API on
// embedded SQLite.
//
//	go run ./cmd/myelind [--listen 127.0.0.1:8008] [--data ./data] [--config FILE] [--server-name NAME]
//
// # Configuration
//
// Flags override the config file, which overrides the defaults. The config
// file is JSON; docs/myelind.example.json lists every key with its default:
//
//	server_name             Matrix server name (user IDs are @user:server_name). Default "localhost".
//	listen                  address to serve on. Default "127.0.0.1:8008".
//	data_dir                directory for the database and the signing key. Default "./data".
//	base_url                public URL announced in /.well-known/matrix/client. Default: derived from the request.
//	registration.mode       "open", "token" or "disabled". Default: "open" when listen is a
//	                        loopback address; any other address requires choosing a mode.
//	registration.tokens     registration tokens accepted in "token" mode.
//	max_request_bytes       request body limit. Default 8388608 (8 MiB); events are limited to 65536 bytes.
//	max_upload_bytes        media upload limit. Default 52428800 (50 MiB); media lives in DATA_DIR/media.
//	rate_limit.per_user     token bucket per authenticated user: {"rate": req/s, "burst": n}.
//	                        Default {"rate": 100, "burst": 500}; rate 0 disables.
//	rate_limit.per_ip       token bucket per client IP for unauthenticated requests.
//	                        Default {"rate": 20, "burst": 200}; rate 0 disables.
//	log.level               "debug", "info", "warn" or "error". Default "info".
//	log.format              "text" or "json". Default "text".
//	shutdown_timeout_seconds  how long a graceful shutdown waits for requests. Default 30.
//
// The server's event-signing key is generated at first start and kept in
// DATA_DIR/signing.key. SIGINT or SIGTERM stops the server after in-flight
// requests finish (long-polling /sync requests return at once).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"myelin/keys"
	"myelin/server/httpapi"
	"myelin/server/storage/sqlite"
	"myelin/server/sync"
)

// Config is the config file format.
type Config struct {
	ServerName   string `json:"server_name"`
	Listen       string `json:"listen"`
	DataDir      string `json:"data_dir"`
	BaseURL      string `json:"base_url"`
	Registration struct {
		Mode   string   `json:"mode"`
		Tokens []string `json:"tokens"`
	} `json:"registration"`
	MaxRequestBytes int64 `json:"max_request_bytes"`
	MaxUploadBytes  int64 `json:"max_upload_bytes"`
	RateLimit       struct {
		PerUser rateLimit `json:"per_user"`
		PerIP   rateLimit `json:"per_ip"`
	} `json:"rate_limit"`
	Log struct {
		Level  string `json:"level"`
		Format string `json:"format"`
	} `json:"log"`
	ShutdownTimeoutSeconds int `json:"shutdown_timeout_seconds"`
}

type rateLimit struct {
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
}

func defaults() Config {
	var c Config
	c.ServerName = "localhost"
	c.Listen = "127.0.0.1:8008"
	c.DataDir = "./data"
	c.MaxRequestBytes = 8 << 20
	c.MaxUploadBytes = 50 << 20
	c.RateLimit.PerUser = rateLimit{Rate: 100, Burst: 500}
	c.RateLimit.PerIP = rateLimit{Rate: 20, Burst: 200}
	c.Log.Level = "info"
	c.Log.Format = "text"
	c.ShutdownTimeoutSeconds = 30
	return c
}

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "myelind:", err)
		os.Exit(1)
	}
}

func loadConfig(args []string) (Config, error) {
	c := defaults()
	fs := flag.NewFlagSet("myelind", flag.ContinueOnError)
	listen := fs.String("listen", "", "address to listen on (default 127.0.0.1:8008)")
	data := fs.String("data", "", "data directory (default ./data)")
	cfgFile := fs.String("config", "", "JSON config file (see docs/myelind.example.json)")
	name := fs.String("server-name", "", "Matrix server name (default localhost)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *cfgFile != "" {
		b, err := os.ReadFile(*cfgFile)
		if err != nil {
			return c, fmt.Errorf("read config: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			return c, fmt.Errorf("parse config %s: %w", *cfgFile, err)
		}
	}
	if *listen != "" {
		c.Listen = *listen
	}
	if *data != "" {
		c.DataDir = *data
	}
	if *name != "" {
		c.ServerName = *name
	}
	if c.Registration.Mode == "" {
		host, _, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return c, fmt.Errorf("bad listen address %q: %w", c.Listen, err)
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			// Open registration on a public address invites spam accounts: make
			// the operator choose.
			return c, errors.New(`listening on a non-loopback address requires "registration": {"mode": "open"|"token"|"disabled"} in the config file`)
		}
		c.Registration.Mode = httpapi.RegistrationOpen
	}
	return c, nil
}

func newLogger(c Config, w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		return nil, fmt.Errorf("bad log level %q", c.Log.Level)
	}
	o := &slog.HandlerOptions{Level: lvl}
	switch c.Log.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, o)), nil
	}
	return nil, fmt.Errorf("bad log format %q", c.Log.Format)
}

// loadSigningKey reads DATA_DIR/signing.key ("ed25519 <version> <seed base64>"),
// generating it on first start.
func loadSigningKey(dir string) (*keys.Ed25519SecretKey, string, error) {
	path := filepath.Join(dir, "signing.key")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		seed := make([]byte, 32)
		if _, err := io.ReadFull(rand.Reader, seed); err != nil {
			return nil, "", err
		}
		verb := make([]byte, 4)
		if _, err := io.ReadFull(rand.Reader, verb); err != nil {
			return nil, "", err
		}
		version := "a_" + base64.RawURLEncoding.EncodeToString(verb)[:4]
		line := "ed25519 " + version + " " + base64.RawStdEncoding.EncodeToString(seed) + "\n"
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, "", fmt.Errorf("create signing key: %w", err)
		}
		if _, err := f.WriteString(line); err != nil {
			f.Close()
			return nil, "", fmt.Errorf("write signing key: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, "", fmt.Errorf("sync signing key: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, "", err
		}
		b = []byte(line)
	} else if err != nil {
		return nil, "", fmt.Errorf("read signing key: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) != 3 || f[0] != "ed25519" {
		return nil, "", errors.New("malformed signing key file")
	}
	seed, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(f[2], "="))
	if err != nil {
		return nil, "", errors.New("malformed signing key file")
	}
	k, err := keys.NewEd25519SecretKeyFromSeed(seed)
	if err != nil {
		return nil, "", errors.New("malformed signing key file")
	}
	return k, f[1], nil
}

func run(args []string, logw io.Writer) error {
	c, err := loadConfig(args)
	if err != nil {
		return err
	}
	log, err := newLogger(c, logw)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	key, keyVersion, err := loadSigningKey(c.DataDir)
	if err != nil {
		return err
	}
	notifier := sync.NewNotifier()
	store, err := sqlite.Open(filepath.Join(c.DataDir, "myelind.db"), sqlite.Options{Logger: log, Notify: notifier.Wake})
	if err != nil {
		return err
	}
	defer store.Close()
	srv, err := httpapi.New(httpapi.Config{
		ServerName: c.ServerName, BaseURL: c.BaseURL, Store: store, E2EE: e2eeStore(store), Notifier: notifier, Logger: log,
		Registration: c.Registration.Mode, RegistrationTokens: c.Registration.Tokens, MaxRequestBytes: c.MaxRequestBytes,
		MediaDir: filepath.Join(c.DataDir, "media"), MaxUploadBytes: c.MaxUploadBytes,
		RateLimit:     httpapi.RateLimit{Rate: c.RateLimit.PerUser.Rate, Burst: c.RateLimit.PerUser.Burst},
		RateLimitAnon: httpapi.RateLimit{Rate: c.RateLimit.PerIP.Rate, Burst: c.RateLimit.PerIP.Burst},
		SigningKey:    key, KeyVersion: keyVersion,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second}
	hs.RegisterOnShutdown(srv.Close) // long-polls return at once
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "server_name", c.ServerName, "registration", c.Registration.Mode, "data_dir", c.DataDir)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(c.ShutdownTimeoutSeconds)*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Error("shutdown", "err", err)
	}
	return nil
}
