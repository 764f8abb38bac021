package sync

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		n          int
		retryAfter time.Duration
		lo, hi     time.Duration
	}{
		{"first failure", 1, 0, 500 * time.Millisecond, time.Second},
		{"third failure doubles twice", 3, 0, 2 * time.Second, 4 * time.Second},
		{"capped at five minutes", 40, 0, 150 * time.Second, 5 * time.Minute},
		{"Retry-After wins", 1, 42 * time.Second, 42 * time.Second, 42 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for range 200 {
				if got := backoff(tt.n, tt.retryAfter); got < tt.lo || got > tt.hi {
					t.Fatalf("backoff(%d, %v) = %v, want within [%v, %v]", tt.n, tt.retryAfter, got, tt.lo, tt.hi)
				}
			}
		})
	}
}

func TestJitter(t *testing.T) {
	t.Parallel()
	d := 15 * time.Minute
	seen := map[time.Duration]bool{}
	for range 200 {
		got := jitter(d)
		if got < d*9/10 || got > d*11/10 {
			t.Fatalf("jitter(%v) = %v, want within ±10 %%", d, got)
		}
		seen[got] = true
	}
	if len(seen) < 2 {
		t.Error("jitter returned the same wait every time; replicas would sync in step")
	}
}
