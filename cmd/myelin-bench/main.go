// Command myelin-bench is a load tool for Matrix homeservers. It speaks only
// the standard client-server API
// (https://spec.matrix.org/v1.16/client-server-api/), so it can be pointed
// at myelind, Dendrite or any other server on the same machine:
//
//	myelin-bench --hs http://127.0.0.1:8008 [--pid PID] [--label NAME] [--out result.json] [--scenarios LIST]
//	myelin-bench compare ours.json theirs.json
//	myelin-bench freeport   (prints a free loopback port, for scripts)
//
// Scenarios (each bounded in count and by --scenario-timeout):
//
//	registration    register --reg-users users (UIA m.login.dummy) with --reg-conc at once: users/s
//	send_plain      --senders users send --per-sender m.room.message each into one room: events/s, latency
//	send_encrypted  the same with megolm-shaped m.room.encrypted events (--cipher-bytes of ciphertext)
//	sync_latency    one sender, --receivers users long-polling /sync: send-to-arrival p50/p95/p99, % delivered
//	keys_upload     --devices devices of --device-users users each upload device keys and --otks one-time keys
//	keys_query      one /keys/query covering all those devices
//	keys_claim      one /keys/claim of a signed_curve25519 key of each of them
//	to_device       one sendToDevice to all those devices, each long-polling /sync: time to full delivery
//	rooms           --rooms rooms of --room-members members (createRoom with invites, then joins): rooms/s
//
// Setup (registering users, logging in devices, creating rooms) is not
// timed. With --pid the tool samples the server process during each
// measured phase: CPU seconds (utime+stime from /proc/PID/stat), the
// maximum VmRSS sampled every 50 ms, and VmHWM at the end (the kernel
// cannot reset it, so it covers the process's whole life).
//
// The homeserver must be on a loopback address (no load is sent elsewhere).
// Rate limits should be off: 429 answers are retried after retry_after_ms,
// 500 answers (SQLite lock collisions under concurrent writers) after a short
// backoff; both are counted per scenario in the report.
//
// scripts/bench-server.sh runs the tool against myelind and Dendrite v0.13.8
// in one run and prints `myelin-bench compare` of the two reports, with the
// ratios and the targets of issue 4.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "myelin-bench:", err)
		os.Exit(1)
	}
}

var allScenarios = []string{"registration", "rooms", "send_plain", "send_encrypted", "sync_latency", "keys", "to_device"}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 1 && args[0] == "freeport" {
		// For scripts: print a free loopback TCP port.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer ln.Close()
		_, err = fmt.Fprintln(stdout, ln.Addr().(*net.TCPAddr).Port)
		return err
	}
	if len(args) > 0 && args[0] == "compare" {
		if len(args) != 3 {
			return errors.New("usage: myelin-bench compare A.json B.json")
		}
		a, err := readReport(args[1])
		if err != nil {
			return err
		}
		b, err := readReport(args[2])
		if err != nil {
			return err
		}
		printCompare(stdout, a, b)
		return nil
	}
	fs := flag.NewFlagSet("myelin-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hs := fs.String("hs", "http://127.0.0.1:8008", "homeserver base URL (loopback only)")
	pid := fs.Int("pid", 0, "server process ID to measure (CPU time and RSS from /proc); 0 = none")
	label := fs.String("label", "", "name of the server in the report (default: the URL)")
	out := fs.String("out", "", "write the JSON report to this file")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run (keys = keys_upload+keys_query+keys_claim)")
	var c config
	fs.IntVar(&c.RegUsers, "reg-users", 100, "registration: users to register")
	fs.IntVar(&c.RegConc, "reg-conc", 4, "registration: concurrent registrations")
	fs.IntVar(&c.Senders, "senders", 8, "send: concurrent senders in one room")
	fs.IntVar(&c.PerSender, "per-sender", 50, "send: events per sender")
	fs.IntVar(&c.CipherBytes, "cipher-bytes", 720, "send_encrypted: random ciphertext bytes (base64 grows them by 4/3; 720 gives a ~1 KiB event content)")
	fs.IntVar(&c.Receivers, "receivers", 20, "sync_latency: long-polling receivers")
	fs.IntVar(&c.E2EMessages, "e2e-messages", 100, "sync_latency: messages sent")
	fs.Float64Var(&c.E2ERate, "e2e-rate", 10, "sync_latency: messages per second")
	fs.IntVar(&c.Devices, "devices", 1000, "keys/to_device: devices")
	fs.IntVar(&c.DeviceUsers, "device-users", 50, "keys/to_device: users owning the devices")
	fs.IntVar(&c.OTKs, "otks", 20, "keys_upload: one-time keys per device")
	fs.IntVar(&c.UploadConc, "upload-conc", 8, "keys_upload: concurrent uploads")
	fs.IntVar(&c.LoginConc, "login-conc", 8, "setup: concurrent logins")
	fs.IntVar(&c.SyncConc, "sync-conc", 2000, "to_device: at most this many /sync requests in flight")
	fs.IntVar(&c.Rooms, "rooms", 50, "rooms: rooms to create")
	fs.IntVar(&c.RoomMembers, "room-members", 10, "rooms: members per room (creator included)")
	fs.IntVar(&c.RoomConc, "room-conc", 4, "rooms: rooms created concurrently")
	fs.DurationVar(&c.ScenarioTimeout, "scenario-timeout", 10*time.Minute, "upper bound on one scenario, setup included")
	allowRemote := fs.Bool("allow-remote", false, "allow a non-loopback homeserver")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return err
	}
	u, err := url.Parse(*hs)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("bad --hs %q", *hs)
	}
	if !*allowRemote && !isLoopback(u.Hostname()) {
		return fmt.Errorf("--hs %s is not a loopback address (pass --allow-remote to load someone else's server)", *hs)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		switch s {
		case "keys_upload", "keys_query", "keys_claim":
			s = "keys"
		}
		ok := false
		for _, a := range allScenarios {
			ok = ok || a == s
		}
		if !ok {
			return fmt.Errorf("unknown scenario %q (have %s)", s, strings.Join(allScenarios, ", "))
		}
		want[s] = true
	}
	if *label == "" {
		*label = u.Host
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()

	b := &bench{
		c: newHSClient(strings.TrimRight(*hs, "/")), cfg: c, pid: *pid,
		runID: randHex(6), log: stderr,
	}
	defer b.c.close()
	b.prefix = "bench" + b.runID + "u"
	rep := &Report{Label: *label, Homeserver: *hs, PID: *pid, Started: time.Now().UTC(), LoadAvg: loadAvg()}
	if err := b.c.checkVersions(ctx); err != nil {
		return err
	}
	whole := startSampler(*pid)
	for _, s := range allScenarios {
		if !want[s] {
			continue
		}
		switch s {
		case "registration":
			rep.Scenarios = append(rep.Scenarios, b.runRegistration(ctx))
		case "rooms":
			rep.Scenarios = append(rep.Scenarios, b.runRooms(ctx))
		case "send_plain":
			rep.Scenarios = append(rep.Scenarios, b.runSend(ctx, false))
		case "send_encrypted":
			rep.Scenarios = append(rep.Scenarios, b.runSend(ctx, true))
		case "sync_latency":
			rep.Scenarios = append(rep.Scenarios, b.runSyncLatency(ctx))
		case "keys":
			rep.Scenarios = append(rep.Scenarios, b.runKeys(ctx)...)
		case "to_device":
			rep.Scenarios = append(rep.Scenarios, b.runToDevice(ctx))
		}
		if ctx.Err() != nil {
			break
		}
	}
	if w := whole.finish(); w != nil {
		rep.CPUSeconds, rep.RSSMaxMiB, rep.HWMMiB = w.CPUSeconds, w.RSSMaxMiB, w.HWMMiB
	}
	rep.Seconds = time.Since(rep.Started).Seconds()
	rep.ClientCPUSeconds, _ = procCPU(os.Getpid())
	rep.Requests, rep.Retries, rep.Retries500 = b.c.requests.Load(), b.c.retries.Load(), b.c.retries500.Load()
	printTable(stdout, rep)
	if *out != "" {
		js, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*out, append(js, '\n'), 0o644); err != nil {
			return err
		}
	}
	for _, r := range rep.Scenarios {
		if r.Error != "" {
			return fmt.Errorf("scenario %s failed", r.Name)
		}
	}
	return ctx.Err()
}

func (c *config) validate() error {
	for _, v := range []struct {
		name string
		n    int
	}{
		{"reg-users", c.RegUsers}, {"reg-conc", c.RegConc}, {"senders", c.Senders}, {"per-sender", c.PerSender},
		{"receivers", c.Receivers}, {"e2e-messages", c.E2EMessages}, {"devices", c.Devices}, {"device-users", c.DeviceUsers},
		{"upload-conc", c.UploadConc}, {"login-conc", c.LoginConc}, {"sync-conc", c.SyncConc}, {"rooms", c.Rooms},
		{"room-members", c.RoomMembers}, {"room-conc", c.RoomConc}, {"cipher-bytes", c.CipherBytes},
	} {
		if v.n < 1 || v.n > 100000 {
			return fmt.Errorf("--%s must be between 1 and 100000", v.name)
		}
	}
	if c.DeviceUsers > c.Devices {
		return errors.New("--device-users must not exceed --devices")
	}
	if c.RoomMembers < 2 {
		return errors.New("--room-members must be at least 2")
	}
	if c.E2ERate <= 0 || c.E2ERate > 10000 {
		return errors.New("--e2e-rate must be in (0, 10000]")
	}
	if c.ScenarioTimeout <= 0 {
		return errors.New("--scenario-timeout must be positive")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkVersions fails early when nothing answers /versions.
func (c *hsClient) checkVersions(ctx context.Context) error {
	var v struct {
		Versions []string `json:"versions"`
	}
	if _, err := c.do(ctx, "GET", "/_matrix/client/versions", "", nil, &v); err != nil {
		return err
	}
	if len(v.Versions) == 0 {
		return errors.New("myelin-bench: /versions lists no versions")
	}
	return nil
}
