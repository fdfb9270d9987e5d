// Package severity reads severities on the scales telemetry uses and puts
// them on one ordinal per family, so a route can keep "HIGH and above":
//
//   - security: INFORMATIONAL < LOW < MEDIUM < HIGH < CRITICAL, read from ASFF
//     labels, ASFF Normalized/Product numbers (0, 1-39, 40-69, 70-89, 90-100)
//     or GuardDuty numbers (<4 LOW, <7 MEDIUM, <9 HIGH, else CRITICAL);
//   - log: TRACE < DEBUG < INFO < WARN < ERROR < FATAL (WARNING, ERR,
//     CRITICAL and PANIC are accepted as aliases).
package severity

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"
)

// Family is the ordinal scale a bound and the values compare on.
type Family int

// The families.
const (
	Numeric Family = iota // a bare number: compare raw values
	Security
	Log
)

var securityLabels = []string{"INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"}
var logLabels = []string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"}
var logAliases = map[string]int{"WARNING": 3, "ERR": 4, "CRITICAL": 5, "CRIT": 5, "PANIC": 5, "NOTICE": 2, "INFORMATION": 2}

// Bound is a parsed min or max.
type Bound struct {
	Family Family
	Level  int
	Num    float64
}

// ParseBound reads a bound on a scale (auto, asff, asff_normalized,
// guardduty, log_level).
func ParseBound(scale, s string) (Bound, error) {
	up := strings.ToUpper(strings.TrimSpace(s))
	if n, err := strconv.ParseFloat(up, 64); err == nil {
		if scale == "log_level" {
			return Bound{}, fmt.Errorf("severity %q: log levels are names (%s)", s, strings.Join(logLabels, ", "))
		}
		return Bound{Family: Numeric, Num: n}, nil
	}
	if scale != "log_level" {
		for i, l := range securityLabels {
			if up == l {
				return Bound{Family: Security, Level: i}, nil
			}
		}
	}
	if scale == "auto" || scale == "log_level" {
		if lvl, ok := logLevel(up); ok {
			return Bound{Family: Log, Level: lvl}, nil
		}
	}
	if scale == "log_level" {
		return Bound{}, fmt.Errorf("unknown log level %q (want one of: %s)", s, strings.Join(logLabels, ", "))
	}
	if scale == "auto" {
		return Bound{}, fmt.Errorf("unknown severity %q (want one of: %s; or a log level: %s; or a number)", s, strings.Join(securityLabels, ", "), strings.Join(logLabels, ", "))
	}
	return Bound{}, fmt.Errorf("unknown severity %q (want one of: %s, or a number)", s, strings.Join(securityLabels, ", "))
}

func logLevel(up string) (int, bool) {
	for i, l := range logLabels {
		if up == l {
			return i, true
		}
	}
	lvl, ok := logAliases[up]
	return lvl, ok
}

// Label names a level of a family.
func Label(f Family, level int) string {
	if f == Log {
		return logLabels[level]
	}
	return securityLabels[level]
}

// Read puts value v on family f. scale is the configured scale; field is
// the last key of the field path, used by auto to tell ASFF's 0-100 numbers
// (Normalized, Product) from GuardDuty's 0-10.
func Read(f Family, scale, field string, v *fastjson.Value) (level int, num float64, err error) {
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		up := strings.ToUpper(strings.TrimSpace(string(b)))
		if f == Numeric {
			n, err := strconv.ParseFloat(up, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("severity %q is not a number", b)
			}
			return 0, n, nil
		}
		if f == Log {
			if lvl, ok := logLevel(up); ok {
				return lvl, 0, nil
			}
			return 0, 0, fmt.Errorf("severity %q is not a log level (%s)", b, strings.Join(logLabels, ", "))
		}
		for i, l := range securityLabels {
			if up == l {
				return i, 0, nil
			}
		}
		if n, err := strconv.ParseFloat(up, 64); err == nil {
			return numberLevel(scale, field, n)
		}
		return 0, 0, fmt.Errorf("severity %q is not an ASFF label (%s)", b, strings.Join(securityLabels, ", "))
	case fastjson.TypeNumber:
		n, _ := v.Float64()
		switch f {
		case Numeric:
			return 0, n, nil
		case Log:
			return 0, 0, fmt.Errorf("severity %v is a number, not a log level", n)
		}
		return numberLevel(scale, field, n)
	default:
		return 0, 0, fmt.Errorf("severity must be a string or number, not %s", v.Type())
	}
}

func numberLevel(scale, field string, n float64) (int, float64, error) {
	if math.IsNaN(n) || n < 0 {
		return 0, 0, fmt.Errorf("severity %v is out of range", n)
	}
	normalized := scale == "asff_normalized" || (scale == "auto" && (field == "Normalized" || field == "Product"))
	if scale == "asff" {
		return 0, 0, fmt.Errorf("severity %v is a number; scale asff reads labels", n)
	}
	if normalized {
		switch {
		case n > 100:
			return 0, 0, fmt.Errorf("severity %v is out of the ASFF 0-100 range", n)
		case n == 0:
			return 0, n, nil
		case n < 40:
			return 1, n, nil
		case n < 70:
			return 2, n, nil
		case n < 90:
			return 3, n, nil
		}
		return 4, n, nil
	}
	switch {
	case n > 10:
		return 0, 0, fmt.Errorf("severity %v is out of the GuardDuty 0-10 range (set scale: asff_normalized for 0-100)", n)
	case n < 4:
		return 1, n, nil
	case n < 7:
		return 2, n, nil
	case n < 9:
		return 3, n, nil
	}
	return 4, n, nil
}
