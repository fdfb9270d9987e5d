// Package athena writes the Athena (Hive DDL) table for an object-store
// sink, with partition projection, so that new partitions are queryable the
// moment their objects land: no MSCK REPAIR TABLE, no crawler.
//
// Each partition key gets the projection its values allow: integer for a
// strftime field (%Y, %m, %d, %H, ...), declared as an int column so it
// filters as a number; date for a strftime date (%Y-%m-%d, ...); enum when
// the caller lists the values; injected only when the caller asks for it.
// When a key is one Athena cannot enumerate and the caller said nothing
// about it, the table is printed without projection (an injected key would
// silently make every query filter on it): its partitions are then
// registered by the sink's glue option or by MSCK REPAIR TABLE, and the
// DDL says so.
package athena

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/template"
)

var columnTypes = map[string]string{
	"string": "string", "int64": "bigint", "double": "double", "bool": "boolean",
	"timestamp_ms": "timestamp", "timestamp_us": "timestamp", "date": "date", "json": "string",
}

// Options are the choices athena-ddl leaves to its caller.
type Options struct {
	// Database qualifies the table name when set.
	Database string
	// Years bounds the projection of year keys (strftime %Y) and the start
	// of date keys. The zero value means DefaultYears.
	Years Years
	// Now resolves NOW in Years; the zero value means time.Now().
	Now time.Time
	// Enums lists the values of partition keys that take few, known
	// values, as the record holds them (before Hive escaping).
	Enums map[string][]string
	// Injected names the partition keys whose values every query supplies.
	Injected []string
}

// Years is an inclusive range of years; each end is a year or NOW with an
// optional offset (NOW+1, NOW-2), resolved when the DDL is written.
type Years struct {
	Lo, Hi yearBound
}

type yearBound struct {
	now  bool
	year int // the year, or the offset from NOW
}

// DefaultYears is the year range used when none is given: from 2020 to a
// year past the current one, so clock skew and late data stay visible
// until the table is next written.
const DefaultYears = "2020-NOW+1"

var yearsRange = regexp.MustCompile(`^(\d{4}|NOW(?:[+-]\d{1,3})?)-(\d{4}|NOW(?:[+-]\d{1,3})?)$`)

// ParseYears reads a range such as 2020-NOW+1 or 2019-2030.
func ParseYears(s string) (Years, error) {
	m := yearsRange.FindStringSubmatch(s)
	if m == nil {
		return Years{}, fmt.Errorf("years %q: want FIRST-LAST, each a four-digit year or NOW, NOW+N, NOW-N (e.g. %s, 2019-2030)", s, DefaultYears)
	}
	y := Years{parseYearBound(m[1]), parseYearBound(m[2])}
	if !y.Lo.now && !y.Hi.now && y.Lo.year > y.Hi.year {
		return Years{}, fmt.Errorf("years %q: first year is after the last", s)
	}
	return y, nil
}

// parseYearBound reads one end that yearsRange accepted.
func parseYearBound(s string) yearBound {
	if rest, ok := strings.CutPrefix(s, "NOW"); ok {
		n, _ := strconv.Atoi(rest) // "" is NOW itself
		return yearBound{now: true, year: n}
	}
	n, _ := strconv.Atoi(s)
	return yearBound{year: n}
}

func (b yearBound) resolve(now time.Time) int {
	if b.now {
		return now.Year() + b.year
	}
	return b.year
}

// projection describes how Athena enumerates one partition key and the
// type of its partition column.
type projection struct {
	colType string
	props   [][2]string
	// what says, for the DDL's comments, how queries meet this key.
	what string
}

// A strftime date format and how Athena reads it. The sink Hive-escapes
// partition values, so a '/' in the value is %2F in the path and the Java
// format quotes that literal.
type datePattern struct {
	strftime, javaFormat, goLayout, unit string
}

var datePatterns = []datePattern{
	{"%Y-%m-%d", "yyyy-MM-dd", "2006-01-02", "DAYS"},
	{"%Y/%m/%d", "yyyy'%2F'MM'%2F'dd", "2006/01/02", "DAYS"},
	{"%Y%m%d", "yyyyMMdd", "20060102", "DAYS"},
	{"%Y-%m-%d-%H", "yyyy-MM-dd-HH", "2006-01-02-15", "HOURS"},
	{"%Y-%m-%dT%H", "yyyy-MM-dd'T'HH", "2006-01-02T15", "HOURS"},
	{"%Y-%m", "yyyy-MM", "2006-01", "MONTHS"},
}

// format renders t as the sink writes it into a path.
func (d datePattern) format(t time.Time) string {
	return string(template.HiveEscape(nil, []byte(t.Format(d.goLayout))))
}

var intFields = map[string][3]string{ // range low, high, digits; %Y's range comes from Years
	"%Y": {"", "", "4"}, "%m": {"1", "12", "2"}, "%d": {"1", "31", "2"},
	"%H": {"0", "23", "2"}, "%M": {"0", "59", "2"}, "%j": {"1", "366", "3"},
}

// project picks the projection for one key; ok is false when Athena
// cannot enumerate the key and the caller said nothing about it.
func (o *Options) project(key, expr string, years [2]int) (projection, bool) {
	if vals, ok := o.Enums[key]; ok {
		esc := make([]string, len(vals))
		for i, v := range vals {
			esc[i] = string(template.HiveEscape(nil, []byte(v)))
		}
		return projection{"string", [][2]string{{"type", "enum"}, {"values", strings.Join(esc, ",")}}, "enum"}, true
	}
	if slices.Contains(o.Injected, key) {
		return projection{"string", [][2]string{{"type", "injected"}}, "injected"}, true
	}
	e, err := jq.Compile(expr)
	if err != nil {
		return projection{}, false
	}
	f, ok := e.Strftime()
	if !ok {
		return projection{}, false
	}
	if r, ok := intFields[f]; ok {
		if f == "%Y" {
			r[0], r[1] = strconv.Itoa(years[0]), strconv.Itoa(years[1])
		}
		return projection{"int", [][2]string{{"type", "integer"}, {"range", r[0] + "," + r[1]}, {"digits", r[2]}}, "integer"}, true
	}
	for _, d := range datePatterns {
		if d.strftime == f {
			lo := d.format(time.Date(years[0], 1, 1, 0, 0, 0, 0, time.UTC))
			hi := "NOW" // evaluated when the query runs
			if !o.Years.Hi.now {
				hi = d.format(time.Date(years[1], 12, 31, 23, 0, 0, 0, time.UTC))
			}
			return projection{"string", [][2]string{{"type", "date"}, {"range", lo + "," + hi}, {"format", d.javaFormat}, {"interval", "1"}, {"interval.unit", d.unit}}, "date"}, true
		}
	}
	return projection{}, false
}

var ident = regexp.MustCompile(`[^a-z0-9_]`)

// TableName turns a sink name into an Athena identifier.
func TableName(sink string) string {
	return ident.ReplaceAllString(strings.ToLower(sink), "_")
}

// PlaceholderBucket is the bucket of the LOCATION written for a sink that
// writes local files (file: URL): the table must point where they are
// uploaded, which the configuration does not say.
const PlaceholderBucket = "s3://YOUR-BUCKET/"

// partColumn is one partition key as the table declares it.
type partColumn struct {
	key, column string
	proj        projection
}

// DDL returns the CREATE EXTERNAL TABLE statement for sink.
func DDL(cfg *config.Config, sinkName string, opts Options) (string, error) {
	var s *config.Sink
	for i := range cfg.Sinks {
		if cfg.Sinks[i].Name == sinkName {
			s = &cfg.Sinks[i]
		}
	}
	if s == nil {
		var names []string
		for _, sk := range cfg.Sinks {
			names = append(names, sk.Name)
		}
		return "", fmt.Errorf("no sink %q (defined: %s)", sinkName, strings.Join(names, ", "))
	}
	if s.Type != "s3" || s.Format != "parquet" {
		return "", fmt.Errorf("sink %s: athena-ddl needs a type s3, format parquet sink", s.Name)
	}
	location := s.URL
	if !strings.HasSuffix(location, "/") {
		location += "/"
	}
	shown := location
	var note string
	switch {
	case strings.HasPrefix(location, "s3://"):
	case strings.HasPrefix(location, "file:"):
		local := strings.TrimPrefix(strings.TrimPrefix(location, "file:"), "//")
		location = PlaceholderBucket + path.Base(strings.TrimSuffix(local, "/")) + "/"
		note = fmt.Sprintf("-- %s writes local files: LOCATION is a placeholder. Upload %s to S3 as it is and put its URL\n-- in LOCATION%%s.\n", s.Name, local)
	default:
		return "", fmt.Errorf("sink %s: athena-ddl needs an s3:// or file: URL, not %s", s.Name, s.URL)
	}
	hiveLayout := ""
	for _, kv := range s.PartitionKeys {
		hiveLayout += kv.Key + "=!{partitionKeyFromQuery:" + kv.Key + "}/"
	}
	prefix := s.Prefix
	if prefix == "" {
		prefix = hiveLayout
	}
	if strings.Contains(prefix, "!{timestamp:") {
		return "", fmt.Errorf("sink %s: prefix uses !{timestamp:...}, which Athena cannot project; express the time as partition_keys instead", s.Name)
	}
	if _, err := template.Parse(prefix); err != nil {
		return "", err
	}
	isKey := map[string]bool{}
	for _, kv := range s.PartitionKeys {
		isKey[kv.Key] = true
	}
	for k := range opts.Enums {
		if !isKey[k] {
			return "", fmt.Errorf("sink %s: --enum %s: no such partition key", s.Name, k)
		}
	}
	for _, k := range opts.Injected {
		if !isKey[k] {
			return "", fmt.Errorf("sink %s: --injected %s: no such partition key", s.Name, k)
		}
		if _, ok := opts.Enums[k]; ok {
			return "", fmt.Errorf("sink %s: partition key %s is both --enum and --injected", s.Name, k)
		}
	}
	yearsSpec := opts.Years
	if yearsSpec == (Years{}) {
		yearsSpec, _ = ParseYears(DefaultYears)
	}
	opts.Years = yearsSpec
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	years := [2]int{yearsSpec.Lo.resolve(now), yearsSpec.Hi.resolve(now)}
	if years[0] > years[1] {
		return "", fmt.Errorf("years %d-%d: first year is after the last", years[0], years[1])
	}

	var data [][2]string // name, Athena type
	dataCol := map[string]bool{}
	type decl struct{ at, name string }
	seen := map[string]decl{} // lowered name -> where it is declared
	for i, c := range s.Schema {
		name := c.Column
		if name == "" {
			name = c.Name
		}
		at := fmt.Sprintf("schema[%d]", i)
		// Hive refuses '.' and ':' in a column name, and Athena lowers
		// every name: say which schema entry to change rather than print
		// a statement that fails or a table that reads nulls.
		if strings.ContainsAny(name, ".:") {
			return "", fmt.Errorf("sink %s: %s column %q: Athena refuses '.' and ':' in column names; name the column (column: %s)",
				s.Name, at, name, strings.ToLower(strings.NewReplacer(".", "_", ":", "_").Replace(name)))
		}
		if prev, ok := seen[strings.ToLower(name)]; ok {
			return "", fmt.Errorf("sink %s: %s column %q: Athena lowers column names, so it is the same column as %s (%q)", s.Name, at, name, prev.at, prev.name)
		}
		seen[strings.ToLower(name)] = decl{at, name}
		dataCol[strings.ToLower(name)] = true
		data = append(data, [2]string{name, columnTypes[c.Type]})
	}
	if s.ExtraColumn != "" {
		if prev, ok := seen[strings.ToLower(s.ExtraColumn)]; ok {
			return "", fmt.Errorf("sink %s: %s column %q: Athena lowers column names, so it is the same column as extra_column (%q)", s.Name, prev.at, prev.name, s.ExtraColumn)
		}
		dataCol[strings.ToLower(s.ExtraColumn)] = true
		data = append(data, [2]string{s.ExtraColumn, "string"})
	}

	var parts []partColumn
	var unknown, renamed, dropped []string
	for _, kv := range s.PartitionKeys {
		proj, ok := opts.project(kv.Key, kv.Value, years)
		if !ok {
			unknown = append(unknown, kv.Key)
			proj = projection{colType: "string", what: "listed"}
		}
		parts = append(parts, partColumn{kv.Key, kv.Key, proj})
	}
	project := len(unknown) == 0
	for i := range parts {
		p := &parts[i]
		if !dataCol[strings.ToLower(p.key)] {
			continue
		}
		// Athena allows no column twice. With projection, a key that is
		// also a data column keeps the data column (its clean value, e.g.
		// AWS/EC2) and reads the path (AWS%2FEC2) under another name; the
		// location template maps it. Registered partitions (glue, MSCK
		// REPAIR TABLE) must be named as in the path, so there the data
		// column gives way.
		if !project {
			dropped = append(dropped, p.key)
			continue
		}
		for dataCol[strings.ToLower(p.column)] {
			p.column += "_path"
		}
		renamed = append(renamed, p.key+" as "+p.column)
	}
	var cols []string
	for _, d := range data {
		if !slices.ContainsFunc(dropped, func(k string) bool { return strings.EqualFold(k, d[0]) }) {
			cols = append(cols, fmt.Sprintf("  `%s` %s", d[0], d[1]))
		}
	}

	var b strings.Builder
	table := "`" + TableName(s.Name) + "`"
	if opts.Database != "" {
		table = "`" + opts.Database + "`." + table
	}
	switch {
	case len(parts) == 0:
		fmt.Fprintf(&b, "-- Sluice sink %s: %s Parquet (%s), not partitioned.\n", s.Name, shown, strings.ToUpper(s.Compression))
	case project:
		fmt.Fprintf(&b, "-- Sluice sink %s: %s Parquet (%s) with partition projection.\n", s.Name, shown, strings.ToUpper(s.Compression))
	default:
		fmt.Fprintf(&b, "-- Sluice sink %s: %s Parquet (%s), partitions registered, not projected:\n", s.Name, shown, strings.ToUpper(s.Compression))
		if prefix == hiveLayout {
			fmt.Fprintf(&b, "-- Athena cannot enumerate %s. Register partitions with the sink's glue option\n", strings.Join(unknown, ", "))
			fmt.Fprintf(&b, "-- or MSCK REPAIR TABLE; or print projection with --enum %s=A,B,... or --injected %s.\n", unknown[0], strings.Join(unknown, ","))
		} else {
			// MSCK REPAIR TABLE finds only key=value directories, and the
			// glue option needs the default prefix (validate says so).
			fmt.Fprintf(&b, "-- Athena cannot enumerate %s, and the prefix is not Hive-style key=value/, so neither\n", strings.Join(unknown, ", "))
			fmt.Fprintf(&b, "-- MSCK REPAIR TABLE nor the glue option can register partitions: add each with ALTER TABLE ADD\n")
			fmt.Fprintf(&b, "-- PARTITION (...) LOCATION '...', or print projection with --enum %s=A,B,... or --injected %s.\n", unknown[0], strings.Join(unknown, ","))
		}
	}
	if note != "" {
		// Only a projected table has a location template to fix as well.
		fmt.Fprintf(&b, note, map[bool]string{true: " and storage.location.template", false: ""}[project && len(parts) > 0])
	}
	// Notes on the columns go here too, before the statement: a comment
	// inside a DDL statement breaks it wherever the query is joined onto
	// one line (Athena's console among others).
	if len(dropped) > 0 {
		fmt.Fprintf(&b, "-- %s: partition columns only (Athena allows no column twice).\n", strings.Join(dropped, ", "))
	}
	if len(renamed) > 0 {
		fmt.Fprintf(&b, "-- Also data columns: %s. The data column keeps the clean value (AWS/EC2);\n-- the partition column holds the path value (AWS%%2FEC2) and prunes partitions.\n", strings.Join(renamed, ", "))
	}
	var injected, escaped, listed []string
	for _, p := range parts {
		switch p.proj.what {
		case "injected":
			injected = append(injected, p.column)
			escaped = append(escaped, p.column)
		case "enum":
			escaped = append(escaped, p.column)
		case "listed":
			listed = append(listed, p.column)
		}
	}
	if len(injected) > 0 {
		fmt.Fprintf(&b, "-- %s: injected, so every query must filter on %s with = or IN.\n",
			strings.Join(injected, ", "), map[bool]string{true: "it", false: "each"}[len(injected) == 1])
	}
	if len(escaped) > 0 {
		fmt.Fprintf(&b, "-- %s: path values are Hive-escaped (AWS/EC2 is stored as AWS%%2FEC2); filter with the escaped form.\n", strings.Join(escaped, ", "))
	}
	if len(listed) > 0 {
		// The glue option and MSCK REPAIR TABLE both unescape the path
		// (AWS%2FEC2) into the partition value (AWS/EC2).
		fmt.Fprintf(&b, "-- %s: registered partitions hold the path value unescaped (AWS%%2FEC2 in the path is AWS/EC2);\n-- filter with the clean value.\n", strings.Join(listed, ", "))
	}
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s (\n", table)
	b.WriteString(strings.Join(cols, ",\n"))
	b.WriteString("\n)\n")
	if len(parts) > 0 {
		var decl []string
		for _, p := range parts {
			decl = append(decl, fmt.Sprintf("  `%s` %s", p.column, p.proj.colType))
		}
		fmt.Fprintf(&b, "PARTITIONED BY (\n%s\n)\n", strings.Join(decl, ",\n"))
	}
	b.WriteString("STORED AS PARQUET\n")
	fmt.Fprintf(&b, "LOCATION '%s'\n", location)
	props := [][2]string{{"parquet.compression", strings.ToUpper(s.Compression)}}
	if len(parts) > 0 && project {
		props = append(props, [2]string{"projection.enabled", "true"})
		for _, p := range parts {
			for _, pp := range p.proj.props {
				props = append(props, [2]string{"projection." + p.column + "." + pp[0], pp[1]})
			}
		}
		tpl := prefix
		for _, p := range parts {
			tpl = strings.ReplaceAll(tpl, "!{partitionKeyFromQuery:"+p.key+"}", "${"+p.column+"}")
		}
		props = append(props, [2]string{"storage.location.template", location + tpl})
	}
	b.WriteString("TBLPROPERTIES (\n")
	for i, p := range props {
		sep := ","
		if i == len(props)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  '%s'=%s%s\n", p[0], quote(p[1]), sep)
	}
	b.WriteString(");\n")
	return b.String(), nil
}

// quote writes a DDL string literal. A value holding a single quote (the
// literal parts of a Java date format) is double-quoted, which Hive's DDL
// grammar, and so Athena's, accepts as well.
func quote(v string) string {
	if strings.Contains(v, "'") {
		return `"` + v + `"`
	}
	return "'" + v + "'"
}
