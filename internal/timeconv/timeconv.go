// Package timeconv reads epoch numbers and RFC 3339 strings as times, the one
// conversion shared by event-time extraction, epoch_to_utc and Parquet
// timestamp columns.
package timeconv

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/valyala/fastjson"
)

// Auto-unit thresholds on the absolute epoch value: below 1e11 it is seconds
// (up to the year 5138), below 1e14 milliseconds, below 1e17 microseconds,
// otherwise nanoseconds.
const (
	autoSeconds = 1e11
	autoMillis  = 1e14
	autoMicros  = 1e17
)

var (
	minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
)

// autoUnit picks the unit of an epoch from its magnitude.
func autoUnit(abs float64) string {
	switch {
	case abs < autoSeconds:
		return "s"
	case abs < autoMillis:
		return "ms"
	case abs < autoMicros:
		return "us"
	}
	return "ns"
}

// FromEpoch converts an epoch number in unit (s, ms, us, ns, auto). Times
// before 1970 or after 9999 are errors.
func FromEpoch(n float64, unit string) (time.Time, error) {
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return time.Time{}, fmt.Errorf("epoch %v is not a number", n)
	}
	if unit == "auto" {
		unit = autoUnit(math.Abs(n))
	}
	var sec, nsec float64
	switch unit {
	case "s":
		sec = math.Floor(n)
		nsec = math.Round((n - sec) * 1e9)
	case "ms":
		sec = math.Floor(n / 1e3)
		nsec = math.Round((n - sec*1e3) * 1e6)
	case "us":
		sec = math.Floor(n / 1e6)
		nsec = math.Round((n - sec*1e6) * 1e3)
	case "ns":
		sec = math.Floor(n / 1e9)
		nsec = n - sec*1e9
	default:
		return time.Time{}, fmt.Errorf("unknown epoch unit %q", unit)
	}
	if sec < float64(minTime.Unix()) || sec > float64(maxTime.Unix()) {
		return time.Time{}, fmt.Errorf("epoch %s %s is out of range (1970-01-01 to 9999-12-31)", strconv.FormatFloat(n, 'f', -1, 64), unit)
	}
	return time.Unix(int64(sec), int64(nsec)).UTC(), nil
}

// epochInt converts integral epochs exactly, without float rounding.
func epochInt(i int64, unit string) (time.Time, error) {
	if unit == "auto" {
		unit = autoUnit(math.Abs(float64(i)))
	}
	var t time.Time
	switch unit {
	case "s":
		if i > maxTime.Unix() {
			return FromEpoch(float64(i), unit)
		}
		t = time.Unix(i, 0)
	case "ms":
		t = time.UnixMilli(i)
	case "us":
		t = time.UnixMicro(i)
	case "ns":
		t = time.Unix(0, i)
	default:
		return time.Time{}, fmt.Errorf("unknown epoch unit %q", unit)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, fmt.Errorf("epoch %d %s is out of range (1970-01-01 to 9999-12-31)", i, unit)
	}
	return t.UTC(), nil
}

// Read converts a JSON value: a number in unit, or (with unit auto) an
// RFC 3339 string or a string holding a number.
func Read(v *fastjson.Value, unit string) (time.Time, error) {
	switch v.Type() {
	case fastjson.TypeNumber:
		if i, err := v.Int64(); err == nil {
			return epochInt(i, unit)
		}
		f, err := v.Float64()
		if err != nil {
			return time.Time{}, fmt.Errorf("invalid number %s", v)
		}
		return FromEpoch(f, unit)
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return ReadString(string(b), unit)
	default:
		return time.Time{}, fmt.Errorf("want an epoch number or RFC 3339 string, not %s", v.Type())
	}
}

// ReadString converts a string: RFC 3339 or a number in unit.
func ReadString(s, unit string) (time.Time, error) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return epochInt(i, unit)
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return FromEpoch(f, unit)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an epoch nor an RFC 3339 time", s)
	}
	if t.Before(minTime) || t.After(maxTime) {
		return time.Time{}, fmt.Errorf("%q is out of range (1970-01-01 to 9999-12-31)", s)
	}
	return t, nil
}

// AppendRFC3339Millis renders t in loc as RFC 3339 with milliseconds:
// 2024-11-03T07:00:00.000Z, or 2024-11-03T16:00:00.000+09:00.
func AppendRFC3339Millis(dst []byte, t time.Time, loc *time.Location) []byte {
	return t.In(loc).AppendFormat(dst, "2006-01-02T15:04:05.000Z07:00")
}
