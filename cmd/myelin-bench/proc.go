package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// procCPU reads utime+stime of pid in seconds from /proc/PID/stat.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStat(b)
}

// parseStat returns utime+stime in seconds from the text of /proc/PID/stat.
func parseStat(b []byte) (float64, error) {
	// The command name (field 2) may contain spaces: fields start after ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("myelin-bench: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, errors.New("myelin-bench: short /proc stat")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("myelin-bench: malformed /proc stat times")
	}
	return float64(ut+st) / clockTicks, nil
}

// procMem reads VmRSS and VmHWM of pid in bytes from /proc/PID/status.
func procMem(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &rss
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &hwm
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) >= 2 {
			kb, _ := strconv.ParseInt(fs[1], 10, 64)
			*dst = kb << 10
		}
	}
	return rss, hwm, sc.Err()
}

// procSampler measures the server process during one scenario phase: CPU
// time (utime+stime delta), VmRSS sampled every 50 ms (max) and VmHWM at
// the end. The kernel cannot reset VmHWM, so it covers the process's life.
type procSampler struct {
	pid      int
	cpu0     float64
	mu       sync.Mutex
	rssMax   int64
	stop     chan struct{}
	done     chan struct{}
	failures int
}

func startSampler(pid int) *procSampler {
	if pid <= 0 {
		return nil
	}
	p := &procSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	p.cpu0, _ = procCPU(pid)
	p.sample()
	go func() {
		defer close(p.done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.sample()
			}
		}
	}()
	return p
}

func (p *procSampler) sample() {
	rss, _, err := procMem(p.pid)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failures++
		return
	}
	p.rssMax = max(p.rssMax, rss)
}

// procResult is what a sampler measured.
type procResult struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	RSSMaxMiB  float64 `json:"rss_max_mib"`
	HWMMiB     float64 `json:"vmhwm_mib"`
}

func (p *procSampler) finish() *procResult {
	if p == nil {
		return nil
	}
	close(p.stop)
	<-p.done
	p.sample()
	cpu1, _ := procCPU(p.pid)
	_, hwm, _ := procMem(p.pid)
	p.mu.Lock()
	defer p.mu.Unlock()
	return &procResult{CPUSeconds: cpu1 - p.cpu0, RSSMaxMiB: mib(p.rssMax), HWMMiB: mib(hwm)}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
