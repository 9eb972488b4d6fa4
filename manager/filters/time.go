package filters

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
)

// ParseTime reads a point in time as docker's --since, --until and
// until= filters do: a duration before now ("10m", "1h30m"), a Unix
// timestamp in seconds with optional fraction ("1700000000.5"), or a date
// and time (RFC 3339, with or without the zone, or just the date; without
// a zone it is local time).
func ParseTime(value string, now time.Time) (time.Time, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return time.Time{}, fmt.Errorf("empty time: %w", errdefs.ErrInvalidArgument)
	}
	if d, err := time.ParseDuration(value); err == nil {
		return now.Add(-d), nil
	}
	if secs, frac, ok := unixTimestamp(value); ok {
		return time.Unix(secs, frac), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02"} {
		var (
			t   time.Time
			err error
		)
		if layout == time.RFC3339Nano {
			t, err = time.Parse(layout, value)
		} else {
			t, err = time.ParseInLocation(layout, value, time.Local)
		}
		if err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot read %q as a time: give a duration (10m), a Unix timestamp or an RFC 3339 date: %w", value, errdefs.ErrInvalidArgument)
}

// unixTimestamp reads "<seconds>[.<fraction>]".
func unixTimestamp(v string) (int64, int64, bool) {
	s, f, hasFrac := strings.Cut(v, ".")
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if !hasFrac {
		return secs, 0, true
	}
	if f == "" || len(f) > 9 {
		return 0, 0, false
	}
	frac, err := strconv.ParseInt(f+strings.Repeat("0", 9-len(f)), 10, 64)
	if err != nil || frac < 0 {
		return 0, 0, false
	}
	return secs, frac, true
}
