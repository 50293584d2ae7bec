package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Metric is one measured figure of a scenario.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Better is "higher", "lower" or "" (informational).
	Better string `json:"better,omitempty"`
}

// Result is one scenario's outcome.
type Result struct {
	Name         string         `json:"name"`
	Params       map[string]any `json:"params,omitempty"`
	Metrics      []Metric       `json:"metrics,omitempty"`
	SetupSeconds float64        `json:"setup_seconds"`
	Server       *procResult    `json:"server,omitempty"`
	Skipped      string         `json:"skipped,omitempty"`
	Error        string         `json:"error,omitempty"`
}

func (r *Result) add(name string, v float64, unit, better string) {
	r.Metrics = append(r.Metrics, Metric{Name: name, Value: v, Unit: unit, Better: better})
}

// addLatencies adds p50/p95/p99 (and max) of ds in milliseconds.
func (r *Result) addLatencies(prefix string, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	for _, p := range []float64{50, 95, 99} {
		r.add(fmt.Sprintf("%s_p%g", prefix, p), ms(percentile(ds, p)), "ms", "lower")
	}
	r.add(prefix+"_max", ms(ds[len(ds)-1]), "ms", "")
}

// percentile is the nearest-rank percentile of sorted ds.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	k = max(0, min(k, len(sorted)-1))
	return sorted[k]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Report is the tool's machine-readable output.
type Report struct {
	Label      string    `json:"label"`
	Homeserver string    `json:"homeserver"`
	PID        int       `json:"pid,omitempty"`
	Started    time.Time `json:"started"`
	Seconds    float64   `json:"seconds"`
	LoadAvg    string    `json:"loadavg,omitempty"`
	Requests   int64     `json:"requests"`
	Retries    int64     `json:"retries_429"`
	// Retries500 counts 500 answers that were retried.
	Retries500 int64     `json:"retries_500"`
	Scenarios  []*Result `json:"scenarios"`
	// RSSMaxMiB and HWMMiB summarise the server over all scenarios.
	RSSMaxMiB  float64 `json:"server_rss_max_mib,omitempty"`
	HWMMiB     float64 `json:"server_vmhwm_mib,omitempty"`
	CPUSeconds float64 `json:"server_cpu_seconds,omitempty"`
	// ClientCPUSeconds is this tool's own CPU time (it shares the machine).
	ClientCPUSeconds float64 `json:"client_cpu_seconds,omitempty"`
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func fmtVal(v float64) string {
	switch {
	case math.Abs(v) < 0.0005:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// printTable writes the human-readable table of one report.
func printTable(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "%s (%s)  load average: %s  wall %.1fs\n", rep.Label, rep.Homeserver, rep.LoadAvg, rep.Seconds)
	fmt.Fprintf(w, "%-16s %-26s %12s %-5s\n", "scenario", "metric", "value", "unit")
	for _, r := range rep.Scenarios {
		switch {
		case r.Skipped != "":
			fmt.Fprintf(w, "%-16s SKIPPED: %s\n", r.Name, r.Skipped)
			continue
		case r.Error != "":
			fmt.Fprintf(w, "%-16s ERROR: %s\n", r.Name, r.Error)
		}
		for _, m := range r.Metrics {
			fmt.Fprintf(w, "%-16s %-26s %12s %-5s\n", r.Name, m.Name, fmtVal(m.Value), m.Unit)
		}
		if r.Server != nil {
			fmt.Fprintf(w, "%-16s %-26s %12s %-5s\n", r.Name, "server_cpu", fmtVal(r.Server.CPUSeconds), "s")
			fmt.Fprintf(w, "%-16s %-26s %12s %-5s\n", r.Name, "server_rss_max", fmtVal(r.Server.RSSMaxMiB), "MiB")
			fmt.Fprintf(w, "%-16s %-26s %12s %-5s\n", r.Name, "server_vmhwm_end", fmtVal(r.Server.HWMMiB), "MiB")
		}
		fmt.Fprintf(w, "%-16s %-26s %12s %-5s\n", r.Name, "setup", fmtVal(r.SetupSeconds), "s")
	}
	if rep.PID > 0 {
		fmt.Fprintf(w, "server overall: cpu %.1fs, rss max %.1f MiB, VmHWM %.1f MiB\n", rep.CPUSeconds, rep.RSSMaxMiB, rep.HWMMiB)
	}
	fmt.Fprintf(w, "requests %d, 429 retries %d, 500 retries %d, load tool cpu %.1fs\n", rep.Requests, rep.Retries, rep.Retries500, rep.ClientCPUSeconds)
}

func readReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("myelin-bench: %s: %w", path, err)
	}
	return &r, nil
}

// target is one of issue 4's goals, as a ratio of a (ours) to b (reference).
type target struct {
	scenario, metric string
	// factor: for "higher" metrics a/b >= factor; for "lower" a/b <= 1/factor.
	factor float64
}

var targets = []target{
	{"send_plain", "events_per_s", 10},
	{"send_encrypted", "events_per_s", 10},
	{"keys_claim", "claim_ms", 10},
	{"to_device", "full_delivery_ms", 10},
	{"rooms", "rooms_per_s", 10},
	{"sync_latency", "latency_p99", 10},
	{"overall", "server_rss_max", 4},
}

type row struct {
	scenario, metric, unit, better string
	a, b                           float64
	okA, okB                       bool
}

func rowsOf(rep *Report) map[[2]string]row {
	out := map[[2]string]row{}
	put := func(sc, name, unit, better string, v float64) {
		out[[2]string{sc, name}] = row{scenario: sc, metric: name, unit: unit, better: better, a: v, okA: true}
	}
	for _, r := range rep.Scenarios {
		if r.Skipped != "" {
			continue
		}
		for _, m := range r.Metrics {
			put(r.Name, m.Name, m.Unit, m.Better, m.Value)
		}
		if r.Server != nil {
			put(r.Name, "server_cpu", "s", "lower", r.Server.CPUSeconds)
			put(r.Name, "server_rss_max", "MiB", "lower", r.Server.RSSMaxMiB)
		}
	}
	if rep.PID > 0 {
		// Peak over the measured phases other than registration: password
		// hashing (argon2id's memory cost) dominates a server's peak otherwise.
		var noAuth float64
		for _, r := range rep.Scenarios {
			if r.Server != nil && r.Name != "registration" {
				noAuth = max(noAuth, r.Server.RSSMaxMiB)
			}
		}
		put("overall", "rss_max_excl_register", "MiB", "lower", noAuth)
		put("overall", "server_rss_max", "MiB", "lower", rep.RSSMaxMiB)
		put("overall", "server_vmhwm", "MiB", "lower", rep.HWMMiB)
		put("overall", "server_cpu", "s", "lower", rep.CPUSeconds)
	}
	return out
}

// printCompare writes a side-by-side table of two reports with ratios a/b and
// the targets.
func printCompare(w io.Writer, a, b *Report) {
	ra, rb := rowsOf(a), rowsOf(b)
	var order [][2]string
	seen := map[[2]string]bool{}
	for _, rep := range []*Report{a, b} {
		for _, r := range rep.Scenarios {
			for _, m := range r.Metrics {
				k := [2]string{r.Name, m.Name}
				if !seen[k] {
					seen[k] = true
					order = append(order, k)
				}
			}
			for _, n := range []string{"server_cpu", "server_rss_max"} {
				k := [2]string{r.Name, n}
				if !seen[k] && (ra[k].okA || rb[k].okA) {
					seen[k] = true
					order = append(order, k)
				}
			}
		}
	}
	for _, n := range []string{"server_rss_max", "rss_max_excl_register", "server_vmhwm", "server_cpu"} {
		order = append(order, [2]string{"overall", n})
	}
	fmt.Fprintf(w, "%s vs %s  (load average at start: %s / %s; at end: %s)\n", a.Label, b.Label, a.LoadAvg, b.LoadAvg, loadAvg())
	fmt.Fprintf(w, "%-15s %-22s %11s %11s %-4s %9s %s\n", "scenario", "metric", a.Label, b.Label, "unit", "a/b", "")
	for _, k := range order {
		x, y := ra[k], rb[k]
		if !x.okA && !y.okA {
			continue
		}
		unit, better := x.unit, x.better
		if !x.okA {
			unit, better = y.unit, y.better
		}
		va, vb := "-", "-"
		if x.okA {
			va = fmtVal(x.a)
		}
		if y.okA {
			vb = fmtVal(y.a)
		}
		ratio, verdict := "", ""
		if x.okA && y.okA && y.a != 0 {
			q := x.a / y.a
			ratio = fmtVal(q) + "x"
			switch better {
			case "higher":
				verdict = fmt.Sprintf("(%s better)", fmtVal(q)+"x")
			case "lower":
				if x.a > 0 {
					verdict = fmt.Sprintf("(%s better)", fmtVal(y.a/x.a)+"x")
				}
			}
			for _, t := range targets {
				if t.scenario == k[0] && t.metric == k[1] {
					ok := better == "higher" && q >= t.factor || better == "lower" && q <= 1/t.factor
					mark := "MISSED"
					if ok {
						mark = "met"
					}
					if better == "higher" {
						verdict += fmt.Sprintf(" target >=%gx: %s", t.factor, mark)
					} else {
						verdict += fmt.Sprintf(" target <=1/%g: %s", t.factor, mark)
					}
				}
			}
		}
		fmt.Fprintf(w, "%-15s %-22s %11s %11s %-4s %9s %s\n", k[0], k[1], va, vb, unit, ratio, verdict)
	}
	for _, rep := range []*Report{a, b} {
		fmt.Fprintf(w, "%s: %d requests, %d retried after 429, %d retried after 500, wall %.0fs\n",
			rep.Label, rep.Requests, rep.Retries, rep.Retries500, rep.Seconds)
	}
	for _, rep := range []*Report{a, b} {
		for _, r := range rep.Scenarios {
			if r.Skipped != "" {
				fmt.Fprintf(w, "%s: %s skipped: %s\n", rep.Label, r.Name, r.Skipped)
			}
			if r.Error != "" {
				fmt.Fprintf(w, "%s: %s error: %s\n", rep.Label, r.Name, r.Error)
			}
		}
	}
}
