package wsreconnect

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): either
// delta-seconds or an HTTP date. The result is clamped to [0, max]; a
// malformed or negative value, or a date in the past, gives 0.
func parseRetryAfter(v string, now time.Time, max time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" || max <= 0 {
		return 0
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		if secs >= uint64(max/time.Second)+1 || secs > math.MaxInt64/uint64(time.Second) {
			return max
		}
		return min(time.Duration(secs)*time.Second, max)
	} else if errors.Is(err, strconv.ErrRange) && strings.Trim(v, "0123456789") == "" {
		return max // all digits, but beyond uint64
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return min(d, max)
}
