package client

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff computes exponential delays with jitter, capped at Max.
type Backoff struct {
	// Min is the first delay (default 250ms); Max caps every delay
	// (default 30s).
	Min, Max time.Duration
	// Jitter returns a number in [0,1); nil uses math/rand/v2. The delay
	// is uniform in [d/2, d) ("equal jitter") so that clients that failed
	// together do not retry together.
	Jitter func() float64
}

// Delay returns the delay before retry number attempt (0 = first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 250 * time.Millisecond
	}
	if hi <= 0 {
		hi = 30 * time.Second
	}
	d := lo
	for i := 0; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	j := b.Jitter
	if j == nil {
		j = rand.Float64
	}
	return d/2 + time.Duration(j()*float64(d/2))
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
