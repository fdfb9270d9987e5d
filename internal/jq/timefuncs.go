package jq

import (
	"fmt"
	"math"
	"time"

	"github.com/itchyny/gojq"
	"github.com/itchyny/timefmt-go"
)

// strftime, strflocaltime and todate refuse times before year 0: an epoch
// of -99999999999 would otherwise become a partition day=-1199-02-15, a
// path no date column, Hive or Athena reads. Such a record fails its key,
// with the value in the reason, and goes to the error output. Years past
// 9999 are formatted as jq and Firehose format them (an epoch in
// milliseconds read as seconds gives year=56812), so a lake partitioned
// like its Firehose stream stays so.
const (
	boundedStrftime      = "sluice_strftime"
	boundedStrflocaltime = "sluice_strflocaltime"
	boundedTodate        = "sluice_todate"
)

// MinYear is the earliest year the time formatters accept.
const MinYear = 0

func inYearRange(t time.Time) bool { return t.Year() >= MinYear }

// timeFuncs defines the bounded formatters that renameFuncs swaps in.
func timeFuncs() []gojq.CompilerOption {
	return []gojq.CompilerOption{
		gojq.WithFunction(boundedStrftime, 1, 1, func(v any, args []any) any { return formatTime("strftime", v, args[0], time.UTC) }),
		gojq.WithFunction(boundedStrflocaltime, 1, 1, func(v any, args []any) any { return formatTime("strflocaltime", v, args[0], time.Local) }),
		gojq.WithFunction(boundedTodate, 0, 0, func(v any, _ []any) any { return formatTime("todate", v, "%Y-%m-%dT%H:%M:%SZ", time.UTC) }),
	}
}

// formatTime is gojq's strftime with the year bound: v is epoch seconds
// or a broken-down time ([year, month0, day, hours, minutes, seconds, ...]).
func formatTime(name string, v, format any, loc *time.Location) any {
	f, ok := format.(string)
	if !ok {
		return fmt.Errorf("%s(%s) cannot be applied to: %s", name, gojq.Preview(format), typePreview(v))
	}
	var t time.Time
	switch x := v.(type) {
	case []any:
		var parts [6]float64
		for i := 0; i < len(parts) && i < len(x); i++ {
			n, ok := gojq.ToFloat64(x[i])
			if !ok {
				return fmt.Errorf("%s(%s) cannot be applied to: %s", name, gojq.Preview(format), typePreview(v))
			}
			parts[i] = n
		}
		sec := math.Floor(parts[5])
		t = time.Date(int(parts[0]), time.Month(parts[1])+1, int(parts[2]), int(parts[3]), int(parts[4]), int(sec), int((parts[5]-sec)*1e9), loc)
	default:
		n, ok := gojq.ToFloat64(v)
		if !ok {
			return fmt.Errorf("%s(%s) cannot be applied to: %s", name, gojq.Preview(format), typePreview(v))
		}
		// The native path's conversion, so both agree on every epoch.
		if t, ok = epochToTime(n); !ok {
			return fmt.Errorf("%s cannot format %v: time out of range (before year %d, or not an epoch)", name, v, MinYear)
		}
		t = t.In(loc)
	}
	if !inYearRange(t) {
		return fmt.Errorf("%s cannot format %v: time out of range (before year %d)", name, v, MinYear)
	}
	return timefmt.Format(t, f)
}

// typePreview names a value the way gojq's type errors do.
func typePreview(v any) string {
	if v == nil {
		return "null"
	}
	return gojq.TypeOf(v) + " (" + gojq.Preview(v) + ")"
}
