package myelin_test

// The import rules of ../shared/ARCHITECTURE.md, written down as a test (in the
// manner of Go's own go/build/deps_test.go). DO NOT loosen a rule to make the
// build pass: change the design, or change ARCHITECTURE.md first with a reason.

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

type goPackage struct {
	ImportPath string
	Imports    []string // direct imports of the non-test package
	Deps       []string // transitive imports of the non-test package
	CgoFiles   []string
}

func listPackages(t *testing.T) []goPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []goPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list returned no packages")
	}
	return pkgs
}

const mod = "myelin"

// isPure reports whether a package belongs to the sans-I/O core.
func isPure(path string) bool {
	for _, p := range []string{mod + "/keys", mod + "/signing", mod + "/canonicaljson", mod + "/id"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return strings.HasPrefix(path, mod+"/crypto/")
}

func under(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }

func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	type rule struct {
		applies func(string) bool
		direct  bool // check direct imports only (the package may reach these through fmt etc.)
		banned  map[string]string
	}
	serverBans := map[string]string{
		mod + "/crypto/olm":    "the server must not be able to decrypt",
		mod + "/crypto/megolm": "the server must not be able to decrypt",
		mod + "/crypto/backup": "the server must not be able to decrypt backups",
		mod + "/crypto/ssss":   "the server must not be able to read secret storage",
		mod + "/crypto/sas":    "verification is the clients' business",
		mod + "/e2ee":          "the server must not be able to decrypt",
		mod + "/client":        "the server must not contain the client",
	}
	rules := []rule{
		{isPure, false, map[string]string{
			"net":          "crypto core is sans-I/O",
			"net/http":     "crypto core is sans-I/O",
			"database/sql": "crypto core has no storage",
		}},
		{isPure, true, map[string]string{
			"os":          "crypto core is sans-I/O",
			"log":         "crypto core returns errors, it does not log",
			"context":     "crypto core does no I/O, so it takes no context",
			"time":        "crypto core has no clock",
			"math/rand":   "randomness is an io.Reader argument",
			"crypto/rand": "randomness is an io.Reader argument",
		}},
		{func(p string) bool { return under(p, mod+"/e2ee") && !under(p, mod+"/e2ee/store") }, false, map[string]string{
			"net/http":     "the E2EE machine does no network I/O",
			"database/sql": "the E2EE machine stores only through e2ee.Store",
		}},
		{func(p string) bool { return under(p, mod+"/server") }, false, serverBans},
	}
	for _, p := range pkgs {
		if len(p.CgoFiles) > 0 {
			t.Errorf("%s uses cgo: the product builds with CGO_ENABLED=0; peers belong in interop/", p.ImportPath)
		}
		for _, d := range p.Deps {
			if strings.HasPrefix(d, "maunium.net/") || strings.Contains(d, "matrix-org/") {
				t.Errorf("%s imports peer %s: peers belong in interop/", p.ImportPath, d)
			}
		}
		for _, r := range rules {
			if !r.applies(p.ImportPath) {
				continue
			}
			list := p.Deps
			if r.direct {
				list = p.Imports
			}
			for _, d := range list {
				if why, ok := r.banned[d]; ok {
					t.Errorf("BadDeps: %s -> %s: %s", p.ImportPath, d, why)
				}
			}
		}
		// Storage engines are chosen by the binary, not by library code.
		for _, d := range p.Imports {
			if (under(d, mod+"/server/storage/sqlite") || under(d, mod+"/server/storage/postgres")) &&
				!under(p.ImportPath, mod+"/cmd/myelind") && !under(p.ImportPath, mod+"/server/storage") {
				t.Errorf("BadDeps: %s -> %s: storage engines are imported only by cmd/myelind and tests", p.ImportPath, d)
			}
			if under(d, mod+"/internal/evilhs") && !under(p.ImportPath, mod+"/e2etest") {
				t.Errorf("BadDeps: %s -> %s: the adversarial homeserver is for tests only", p.ImportPath, d)
			}
		}
	}
}

// loggingCall matches uses of log/slog that log, as opposed to implementing
// slog.LogValuer (LogValue() slog.Value), which secret types in the pure core
// do in order to redact themselves.
var loggingCall = regexp.MustCompile(`\bslog\.(New|Default|SetDefault|Info|Warn|Error|Debug|Log|LogAttrs|Logger|Handler|NewTextHandler|NewJSONHandler)\b`)

// TestPureCoreDoesNotLog scans the non-test sources of the pure packages for
// logging calls: they may import log/slog only for the LogValuer type.
func TestPureCoreDoesNotLog(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .GoFiles}} {{$.Dir}}/{{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !isPure(f[0]) {
			continue
		}
		for _, file := range f[1:] {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if m := loggingCall.Find(src); m != nil {
				t.Errorf("%s: %s: the crypto core returns errors, it does not log", file, m)
			}
		}
	}
	if !loggingCall.MatchString("slog.Info(") || loggingCall.MatchString("func (k Key) LogValue() slog.Value") {
		t.Fatal("loggingCall pattern is wrong")
	}
}

// TestRulesCanFail checks that the rule table catches a violation, so that
// TestImportRules cannot pass vacuously.
func TestRulesCanFail(t *testing.T) {
	if !isPure(mod+"/crypto/olm") || !isPure(mod+"/keys") || isPure(mod+"/e2ee") || isPure(mod+"/server/httpapi") {
		t.Fatal("isPure classifies packages wrongly")
	}
}
