package clients

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"myelin/interop/internal/testenv"
)

// startJSSDK starts a matrix-js-sdk driver (rust crypto) for one device.
// The npm packages come from scripts/install-client-deps.sh (npm ci in
// jssdk/); without node or them the test is skipped, unless CI is set.
func startJSSDK(t *testing.T, hs *homeserver, name string) *driverDevice {
	t.Helper()
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join("jssdk", "node_modules", "matrix-js-sdk", "package.json"))
	}
	if err != nil {
		msg := "matrix-js-sdk not available (run scripts/install-client-deps.sh): " + err.Error()
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return startDriver(t, name, node, filepath.Join("jssdk", "driver.mjs"), hs.URL)
}

// TestJSSDKWithMautrixAndNio: a matrix-js-sdk user (Element Web's SDK, rust
// crypto) creates an encrypted room with a mautrix-go and a nio user; every
// client decrypts the others' messages, and a second js-sdk device of the
// creator decrypts new ones.
func TestJSSDKWithMautrixAndNio(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hs := startHomeserver(t)

	erin := startJSSDK(t, hs, "erin-jssdk-1")
	erin.register(ctx, "erin", "erin-password")
	erin.login(ctx, hs, "erin", "erin-password")
	mxRegister(ctx, t, hs, "frank", "frank-password")
	frank := mxLogin(ctx, t, hs, "frank", "frank-password", "frank-mautrix")
	grace := startNio(t, hs, "grace-nio")
	grace.register(ctx, "grace", "grace-password")
	grace.login(ctx, hs, "grace", "grace-password")

	room := erin.createEncryptedRoom(ctx, frank.user(), grace.user())
	frank.waitInvited(ctx, room)
	frank.join(ctx, room)
	grace.waitInvited(ctx, room)
	grace.join(ctx, room)
	erin.waitMember(ctx, room, frank.user())
	erin.waitMember(ctx, room, grace.user())
	frank.waitMember(ctx, room, grace.user())
	grace.waitMember(ctx, room, frank.user())

	erin.send(ctx, room, "js-sdk to everyone")
	frank.waitMessage(ctx, room, erin.user(), "js-sdk to everyone")
	grace.waitMessage(ctx, room, erin.user(), "js-sdk to everyone")
	frank.send(ctx, room, "mautrix to everyone")
	erin.waitMessage(ctx, room, frank.user(), "mautrix to everyone")
	grace.waitMessage(ctx, room, frank.user(), "mautrix to everyone")
	grace.send(ctx, room, "nio to everyone")
	erin.waitMessage(ctx, room, grace.user(), "nio to everyone")
	frank.waitMessage(ctx, room, grace.user(), "nio to everyone")

	erin2 := startJSSDK(t, hs, "erin-jssdk-2")
	erin2.login(ctx, hs, "erin", "erin-password")
	erin2.waitMember(ctx, room, erin.user())
	frank.waitDevice(ctx, erin.user(), erin2.device())
	grace.waitDevice(ctx, erin.user(), erin2.device())
	frank.send(ctx, room, "mautrix to both js-sdk devices")
	erin2.waitMessage(ctx, room, frank.user(), "mautrix to both js-sdk devices")
	erin.waitMessage(ctx, room, frank.user(), "mautrix to both js-sdk devices")
	grace.send(ctx, room, "nio to both js-sdk devices")
	erin2.waitMessage(ctx, room, grace.user(), "nio to both js-sdk devices")

	assertNoPlaintext(t, hs, "js-sdk to everyone", "mautrix to everyone", "nio to everyone",
		"mautrix to both js-sdk devices", "nio to both js-sdk devices")
}

// TestJSSDKSecureBackupAndCrossSigning: a matrix-js-sdk user does what
// Element's "Set up Secure Backup" does (cross-signing keys, secret storage,
// key backup); the server then holds her room keys in the backup, and a
// mautrix-go user in a shared room learns of the new cross-signing keys
// through device_lists and sees her device as cross-signed. A new device of
// hers then restores the backup with the recovery key and decrypts the
// message sent before it existed.
func TestJSSDKSecureBackupAndCrossSigning(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hs := startHomeserver(t)

	erin := startJSSDK(t, hs, "erin-jssdk")
	erin.register(ctx, "erin", "erin-password")
	erin.login(ctx, hs, "erin", "erin-password")
	mxRegister(ctx, t, hs, "frank", "frank-password")
	frank := mxLogin(ctx, t, hs, "frank", "frank-password", "frank-mautrix")

	room := erin.createEncryptedRoom(ctx, frank.user())
	frank.waitInvited(ctx, room)
	frank.join(ctx, room)
	erin.waitMember(ctx, room, frank.user())
	frank.fetchKeys(ctx, erin.user())
	frank.waitDevice(ctx, erin.user(), erin.device())

	st := erin.call(ctx, "bootstrap", nil)
	t.Logf("js-sdk bootstrap: backup version %v, trust %v", st["backup_version"], st["backup_trust"])

	erin.send(ctx, room, "backed up and cross-signed")
	frank.waitMessage(ctx, room, erin.user(), "backed up and cross-signed")

	// The room key reaches the server's backup (js-sdk uploads in the
	// background).
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := erin.call(ctx, "backed_up_keys", nil)
		if n, _ := m["count"].(float64); n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room key in the server-side backup after 30s: %v", m)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}

	// mautrix learns of erin's cross-signing keys from device_lists.changed
	// (no explicit fetch) and trusts her device as cross-signed (TOFU).
	mach := frank.helper.Machine()
	testenv.WaitFor(ctx, t, "frank to see erin's device as cross-signed", 30*time.Second, func() bool {
		devs, _ := mach.CryptoStore.GetDevices(ctx, id.UserID(erin.user()))
		dev := devs[id.DeviceID(erin.device())]
		if dev == nil {
			return false
		}
		trust, _ := mach.ResolveTrustContext(ctx, dev)
		return trust >= id.TrustStateCrossSignedTOFU
	})

	// A new js-sdk device of erin, given the recovery key, restores the
	// backup from the server and decrypts the message sent before it existed.
	rk, _ := st["recovery_key"].(string)
	if rk == "" {
		t.Fatalf("bootstrap returned no recovery key: %v", st)
	}
	erin2 := startJSSDK(t, hs, "erin-jssdk-2")
	erin2.login(ctx, hs, "erin", "erin-password")
	r := erin2.call(ctx, "restore_backup", map[string]any{"recovery_key": rk})
	if n, _ := r["imported"].(float64); n < 1 {
		t.Fatalf("restore_backup imported nothing: %v", r)
	}
	erin2.waitMessage(ctx, room, erin.user(), "backed up and cross-signed")
	assertNoPlaintext(t, hs, "backed up and cross-signed")
}
