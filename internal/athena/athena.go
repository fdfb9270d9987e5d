// Package athena writes the Athena (Hive DDL) table for an object-store
// sink, with partition projection, so that new partitions are queryable the
// moment their objects land: no MSCK REPAIR TABLE, no crawler.
package athena

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/template"
)

var columnTypes = map[string]string{
	"string": "string", "int64": "bigint", "double": "double", "bool": "boolean",
	"timestamp_ms": "timestamp", "timestamp_us": "timestamp", "date": "date", "json": "string",
}

// projection describes how Athena enumerates one partition key.
type projection struct {
	props [][2]string
}

// strftime formats that map onto a projection, in the order keys usually
// come: a whole date, or one integer field.
var datePatterns = []struct {
	format, javaFormat string
}{
	{"%Y-%m-%d", "yyyy-MM-dd"}, {"%Y/%m/%d", "yyyy/MM/dd"}, {"%Y%m%d", "yyyyMMdd"},
	{"%Y-%m-%d-%H", "yyyy-MM-dd-HH"}, {"%Y-%m-%dT%H", "yyyy-MM-dd'T'HH"}, {"%Y-%m", "yyyy-MM"},
}

var intFields = map[string][3]string{ // range low, high, digits
	"%Y": {"2000", "2099", "4"}, "%m": {"1", "12", "2"}, "%d": {"1", "31", "2"},
	"%H": {"0", "23", "2"}, "%M": {"0", "59", "2"}, "%j": {"1", "366", "3"},
}

func project(key, expr string) projection {
	e, err := jq.Compile(expr)
	if err == nil {
		if f, ok := e.Strftime(); ok {
			if r, ok := intFields[f]; ok {
				return projection{[][2]string{{"type", "integer"}, {"range", r[0] + "," + r[1]}, {"digits", r[2]}}}
			}
			for _, d := range datePatterns {
				if d.format == f {
					unit := "DAYS"
					switch {
					case strings.HasSuffix(f, "%H"):
						unit = "HOURS"
					case f == "%Y-%m":
						unit = "MONTHS"
					}
					return projection{[][2]string{{"type", "date"}, {"range", "2000-01-01,NOW"}, {"format", d.javaFormat}, {"interval", "1"}, {"interval.unit", unit}}}
				}
			}
		}
	}
	// Values Athena cannot enumerate: queries must name them in WHERE.
	return projection{[][2]string{{"type", "injected"}}}
}

var ident = regexp.MustCompile(`[^a-z0-9_]`)

// TableName turns a sink name into an Athena identifier.
func TableName(sink string) string {
	return ident.ReplaceAllString(strings.ToLower(sink), "_")
}

// DDL returns the CREATE EXTERNAL TABLE statement for sink.
func DDL(cfg *config.Config, sinkName, database string) (string, error) {
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
	if !strings.HasPrefix(s.URL, "s3://") {
		return "", fmt.Errorf("sink %s: athena-ddl needs an s3:// URL, not %s", s.Name, s.URL)
	}
	location := s.URL
	if !strings.HasSuffix(location, "/") {
		location += "/"
	}
	prefix := s.Prefix
	if prefix == "" {
		for _, kv := range s.PartitionKeys {
			prefix += kv.Key + "=!{partitionKeyFromQuery:" + kv.Key + "}/"
		}
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

	var b strings.Builder
	table := "`" + TableName(s.Name) + "`"
	if database != "" {
		table = "`" + database + "`." + table
	}
	fmt.Fprintf(&b, "-- Sluice sink %s: %s Parquet (%s) with partition projection.\n", s.Name, location, strings.ToUpper(s.Compression))
	fmt.Fprintf(&b, "CREATE EXTERNAL TABLE IF NOT EXISTS %s (\n", table)
	var cols, dropped []string
	for _, c := range s.Schema {
		name := c.Column
		if name == "" {
			name = c.Name
		}
		if isKey[name] {
			dropped = append(dropped, name)
			continue
		}
		cols = append(cols, fmt.Sprintf("  `%s` %s", name, columnTypes[c.Type]))
	}
	if s.ExtraColumn != "" {
		cols = append(cols, fmt.Sprintf("  `%s` string", s.ExtraColumn))
	}
	b.WriteString(strings.Join(cols, ",\n"))
	b.WriteString("\n)\n")
	if len(dropped) > 0 {
		fmt.Fprintf(&b, "-- %s: also partition keys, so read from the partition path (Athena allows no column twice).\n", strings.Join(dropped, ", "))
	}
	if len(s.PartitionKeys) > 0 {
		var parts []string
		for _, kv := range s.PartitionKeys {
			parts = append(parts, fmt.Sprintf("  `%s` string", kv.Key))
		}
		fmt.Fprintf(&b, "PARTITIONED BY (\n%s\n)\n", strings.Join(parts, ",\n"))
		var injected []string
		for _, kv := range s.PartitionKeys {
			if project(kv.Key, kv.Value).props[0][1] == "injected" {
				injected = append(injected, kv.Key)
			}
		}
		if len(injected) > 0 {
			fmt.Fprintf(&b, "-- %s: injected, so every query must filter on %s with = or IN. Path values are Hive-escaped (AWS/EC2 is stored as AWS%%2FEC2).\n",
				strings.Join(injected, ", "), map[bool]string{true: "it", false: "each"}[len(injected) == 1])
		}
	}
	b.WriteString("STORED AS PARQUET\n")
	fmt.Fprintf(&b, "LOCATION '%s'\n", location)
	props := [][2]string{{"parquet.compression", strings.ToUpper(s.Compression)}}
	if len(s.PartitionKeys) > 0 {
		props = append(props, [2]string{"projection.enabled", "true"})
		for _, kv := range s.PartitionKeys {
			for _, p := range project(kv.Key, kv.Value).props {
				props = append(props, [2]string{"projection." + kv.Key + "." + p[0], p[1]})
			}
		}
		tpl := prefix
		for _, kv := range s.PartitionKeys {
			tpl = strings.ReplaceAll(tpl, "!{partitionKeyFromQuery:"+kv.Key+"}", "${"+kv.Key+"}")
		}
		props = append(props, [2]string{"storage.location.template", location + tpl})
	}
	b.WriteString("TBLPROPERTIES (\n")
	for i, p := range props {
		sep := ","
		if i == len(props)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "  '%s'='%s'%s\n", p[0], p[1], sep)
	}
	b.WriteString(");\n")
	return b.String(), nil
}
