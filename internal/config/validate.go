package config

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/jsonx"
	"github.com/sluice-data/sluice/internal/routing"
	"github.com/sluice-data/sluice/internal/severity"
	"github.com/sluice-data/sluice/internal/template"
)

// Available lists the source and sink types this build can run. The
// configuration contract names more; a config using one not yet built is
// refused by Validate rather than failing at run time.
var Available = struct {
	Sources []string
	Sinks   []string
}{
	Sources: []string{"file", "archive", "kafka", "kinesis", "firehose_http"},
	Sinks:   []string{"s3", "opensearch"},
}

type validator struct {
	c     *Config
	errs  Errors
	warns Errors
}

// errorf reports a problem at path that makes the configuration invalid.
// Nothing is reported about a value that already failed to decode (or
// anything below it): that error says it all.
func (v *validator) errorf(path, format string, args ...any) {
	if e := v.problem(path, format, args...); e != nil {
		v.errs = append(v.errs, e)
	}
}

// warnf reports a problem at path that does not stop the configuration
// from running (a glob that matches nothing yet, say). processor validate
// prints warnings and exits 0; run logs them at start.
func (v *validator) warnf(path, format string, args ...any) {
	if e := v.problem(path, format, args...); e != nil {
		e.Warning = true
		v.warns = append(v.warns, e)
	}
}

// missing reports that key, required here, is not set in the mapping at
// parent; why says why it is needed (": ..." or ""). Nothing is reported
// when the key is there but its value did not decode.
func (v *validator) missing(parent, key, why string) {
	if !v.c.bad[parent+"."+key] {
		v.errorf(parent, "missing required key %q%s", key, why)
	}
}

func (v *validator) problem(path, format string, args ...any) *Error {
	for p := path; p != ""; {
		if v.c.bad[p] {
			return nil
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return &Error{File: v.c.File, Line: v.c.Line(path), Path: path, Msg: v.c.red.redact(path, fmt.Sprintf(format, args...))}
}

// Validate checks everything decoding cannot: references between
// components, expressions, templates, and that every failure has somewhere
// to go. It returns every error, sorted by line, and sets c.Warnings.
// Messages never contain a value that came from the environment.
func (c *Config) Validate() Errors {
	v := &validator{c: c}
	sources := v.uniqueNames("sources", len(c.Sources), func(i int) string { return c.Sources[i].Name })
	sinks := v.uniqueNames("sinks", len(c.Sinks), func(i int) string { return c.Sinks[i].Name })
	v.uniqueNames("routes", len(c.Routes), func(i int) string { return c.Routes[i].Name })

	if c.Service.ShutdownTimeout.D() <= 0 {
		v.errorf("service.shutdown_timeout", "must be greater than 0")
	}
	if c.Service.JQ.Timeout.D() <= 0 {
		v.errorf("service.jq.timeout", "must be greater than 0")
	}
	if c.Service.JQ.MaxOutputs <= 0 {
		v.errorf("service.jq.max_outputs", "must be greater than 0")
	}
	if c.Service.JQ.MaxOutputBytes <= 0 {
		v.errorf("service.jq.max_output_bytes", "must be greater than 0")
	}
	if p := c.Service.Reload.Poll.D(); p != 0 && p < time.Second {
		v.errorf("service.reload.poll", "must be at least 1s, or 0s (off)")
	}
	if c.Service.HTTPListen != "" {
		v.listenAddr("service.http_listen", c.Service.HTTPListen)
	}
	if c.Service.Tap && c.Service.HTTPListen == "" {
		v.errorf("service.tap", "needs service.http_listen: /tap is served there")
	}
	if c.Service.ErrorSink != "" {
		v.errorSinkRef("service.error_sink", c.Service.ErrorSink, sinks)
	}
	for i := range c.Sources {
		v.source(i, sinks)
	}
	for i := range c.Routes {
		v.route(i, sources, sinks)
		for _, to := range c.Routes[i].To {
			if j, ok := sinks[to]; ok {
				c.Sinks[j].routed = true
			}
		}
	}
	for i := range c.Sinks {
		v.sink(i, sinks)
	}
	v.errorsOutsideTables()
	v.firehoseFlush(sinks)
	v.errs.Sort()
	v.warns.Sort()
	c.Warnings = v.warns
	return v.errs
}

// errorOutputTypes are the values of !{error-output-type}.
var errorOutputTypes = []string{"processing-failed", "schema-mismatch", "sink-rejected", "partition-limit"}

// errorsOutsideTables warns when an s3 sink's error records would land
// inside a Parquet sink's table location, where DuckDB, Athena and other
// Parquet readers of that location fail on them.
func (v *validator) errorsOutsideTables() {
	for i := range v.c.Sinks {
		e := &v.c.Sinks[i]
		if e.Type != "s3" || e.URL == "" {
			continue
		}
		url, prefix := e.ErrorLocation()
		tpl, err := template.Parse(prefix)
		if err != nil {
			continue // reported as an error
		}
		for j := range v.c.Sinks {
			t := &v.c.Sinks[j]
			if t.Type != "s3" || t.Format != "parquet" || t.URL == "" {
				continue
			}
			table, ok := locationKey(t.URL)
			if !ok {
				continue
			}
			for _, typ := range errorOutputTypes {
				loc, ok := locationKey(joinURL(url, tpl.Sample(typ)))
				if !ok || !strings.HasPrefix(loc, table) {
					continue
				}
				path := fmt.Sprintf("sinks[%d].error_prefix", i)
				if e.ErrorPrefix == "" {
					path = fmt.Sprintf("sinks[%d].url", i)
				}
				v.warnf(path, "error records of sink %q land in %s, inside the table location of Parquet sink %q (%s), where Parquet readers of the table (DuckDB, Athena) fail on them; %s",
					e.Name, joinURL(url, tpl.String()), t.Name, t.URL, errorAdvice(e, t, table))
				break
			}
		}
	}
}

// openSearchOnly are the sink keys of opensearch sinks; bothSinks those
// of both types. Every other key of Sink is for s3 sinks, so a key added
// for opensearch and not listed here draws a warning wherever it is used
// (TestKeysOfAnotherType sets the opensearch keys), never silence.
var (
	openSearchOnly = map[string]bool{"endpoints": true, "auth": true, "index": true, "id": true, "bulk": true,
		"error_sink": true, "tls": true, "index_template": true, "ingest_pipeline": true}
	bothSinks = map[string]bool{"name": true, "type": true, "retry": true}
)

// sinkKeys returns the keys of a sink, from its type's tags.
func sinkKeys() []string {
	var keys []string
	for _, f := range keyFields(reflect.TypeFor[Sink]()) {
		keys = append(keys, f.Tag.Get("yaml"))
	}
	return keys
}

// has reports whether the file sets the key at path.
func (c *Config) has(path string) bool {
	_, ok := c.pos[path]
	return ok
}

// errorAdvice says how to move sink s's error records out of the table
// location of t (table, as locationKey gives it).
func errorAdvice(s, t *Sink, table string) string {
	if own, ok := locationKey(s.URL); ok && s != t && strings.HasPrefix(own, table) {
		// Another sink kept inside the table (an error output, say):
		// neither error_prefix nor its default gets its records out.
		return fmt.Sprintf("the url of sink %q is inside that table location: move it out", s.Name)
	}
	if s.ErrorPrefix == "" {
		return "a url that is a bucket or file-system root has no sibling location for them: give the url a prefix"
	}
	return "leave error_prefix unset to write them beside the table"
}

func (v *validator) uniqueNames(kind string, n int, name func(int) string) map[string]int {
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		nm := name(i)
		p := fmt.Sprintf("%s[%d].name", kind, i)
		if nm == "" {
			continue // reported as missing while decoding
		}
		if strings.ContainsAny(nm, " /\\\t") {
			v.errorf(p, "name %q must not contain spaces or slashes", nm)
		}
		if j, dup := seen[nm]; dup {
			v.errorf(p, "duplicate name %q (also %s[%d], line %d)", nm, kind, j, v.c.Line(fmt.Sprintf("%s[%d].name", kind, j)))
			continue
		}
		seen[nm] = i
	}
	return seen
}

func (v *validator) errorSinkRef(path, name string, sinks map[string]int) bool {
	i, ok := sinks[name]
	if !ok {
		v.errorf(path, "unknown sink %q%s", name, known(sinks))
		return false
	}
	if t := v.c.Sinks[i].Type; t != "s3" && t != "" { // no type: reported already
		v.errorf(path, "error sink %q must be type s3, not %s", name, v.c.Sinks[i].Type)
		return false
	}
	return true
}

func known(m map[string]int) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return " (none are defined)"
	}
	return " (defined: " + strings.Join(names, ", ") + ")"
}

// firehoseWait is how long Firehose waits for an HTTP endpoint's answer.
const firehoseWait = 180 * time.Second

// firehoseRetryMax is the longest retry duration a Firehose HTTP endpoint
// destination can have: a retry of a request that succeeded must find it
// remembered for at least this long.
const firehoseRetryMax = 2 * time.Hour

func (v *validator) firehose(p string, f *FirehoseHTTP) {
	if f.Listen == "" {
		v.errorf(p+".listen", "a firehose_http source needs an address to listen on")
	} else {
		v.listenAddr(p+".listen", f.Listen)
	}
	if !strings.HasPrefix(f.Path, "/") {
		v.errorf(p+".path", "must start with /, not %q", f.Path)
	}
	for i, k := range f.AccessKeys {
		if k == "" {
			v.errorf(fmt.Sprintf("%s.access_keys[%d]", p, i), "an access key must not be empty")
		}
	}
	if (f.TLS.CertFile == "") != (f.TLS.KeyFile == "") {
		v.errorf(p+".tls", "set both cert_file and key_file, or neither")
	} else if f.TLS.CertFile != "" {
		// As the listener will load them, so that validate refuses what
		// run would.
		if _, err := tls.LoadX509KeyPair(f.TLS.CertFile, f.TLS.KeyFile); err != nil {
			v.errorf(p+".tls", "%s, %s: %v", f.TLS.CertFile, f.TLS.KeyFile, err)
		}
	}
	if f.MaxBody <= 0 {
		v.errorf(p+".max_body", "must be greater than 0")
	}
	if d := f.RequestTimeout.D(); d <= 0 || d >= firehoseWait {
		v.errorf(p+".request_timeout", "must be greater than 0 and less than %s (Firehose stops waiting then), not %s", firehoseWait, d)
	}
	if d := f.DedupWindow.D(); d < firehoseRetryMax {
		v.errorf(p+".dedup_window", "must be at least %s (Firehose retries a request for up to 7200 s), not %s", firehoseRetryMax, d)
	}
	if f.DedupMaxIDs <= 0 {
		v.errorf(p+".dedup_max_ids", "must be greater than 0")
	}
	if f.MetadataField != "" && !jsonx.ParsePath(f.MetadataField).Valid() {
		v.errorf(p+".metadata_field", "invalid field path %q", f.MetadataField)
	}
}

// firehoseFlush warns when a firehose_http request cannot be answered
// within its request_timeout: its 200 waits until every record is durable,
// that is until the sinks it reaches flush (at buffer.interval or
// bulk.interval at the latest, since every request is its own stream). A
// routed sink that waits as long as request_timeout makes every request
// answer 500 first, an error sink every request with a failed record;
// Firehose's retry then finds the records written. A warning, not an
// error: a deliberately slow sink is how one sees the timeout's 500.
func (v *validator) firehoseFlush(sinks map[string]int) {
	c := v.c
	for _, src := range c.Sources {
		if src.Type != "firehose_http" {
			continue
		}
		timeout := src.Firehose.RequestTimeout.D()
		if timeout <= 0 {
			continue // reported as an error
		}
		routed := map[int]bool{}
		errSinks := map[string]bool{cmp.Or(src.ErrorSink, c.Service.ErrorSink): true}
		for _, r := range c.Routes {
			if !slices.Contains(r.From, src.Name) {
				continue
			}
			errSinks[cmp.Or(r.ErrorSink, src.ErrorSink, c.Service.ErrorSink)] = true
			for _, to := range r.To {
				j, ok := sinks[to]
				if !ok || routed[j] {
					continue
				}
				routed[j] = true
				s := &c.Sinks[j]
				switch s.Type {
				case "s3":
					if d := s.Buffer.Interval.D(); d >= timeout {
						v.warnf(fmt.Sprintf("sinks[%d].buffer.interval", j), "%s is not under request_timeout %s of firehose_http source %q, whose records this sink writes: a request is answered once its records are written, so every request would wait past its timeout and get 500; make the interval shorter",
							d, timeout, src.Name)
					}
				case "opensearch":
					errSinks[cmp.Or(s.ErrorSink, c.Service.ErrorSink)] = true
					if d := s.Bulk.Interval.D(); d >= timeout {
						v.warnf(fmt.Sprintf("sinks[%d].bulk.interval", j), "%s is not under request_timeout %s of firehose_http source %q, whose records this sink indexes: a request is answered once its records are indexed, so every request would wait past its timeout and get 500; make the interval shorter",
							d, timeout, src.Name)
					}
				}
			}
		}
		for name := range errSinks {
			j, ok := sinks[name]
			if !ok || routed[j] || c.Sinks[j].Type != "s3" {
				continue
			}
			if d := c.Sinks[j].Buffer.Interval.D(); d >= timeout {
				v.warnf(fmt.Sprintf("sinks[%d].buffer.interval", j), "%s is not under request_timeout %s of firehose_http source %q, whose failed records this error sink writes: a request with a failed record would wait past its timeout and get 500 until Firehose's retry finds it written; make the interval shorter",
					d, timeout, src.Name)
			}
		}
	}
}

func (v *validator) source(i int, sinks map[string]int) {
	s := &v.c.Sources[i]
	p := fmt.Sprintf("sources[%d]", i)
	if s.Type == "" {
		// The type is missing or did not decode (reported): when one
		// type's block is there, check it as that type, so that its
		// mistakes come in this pass and not after the type is fixed.
		var blocks []string
		for _, typ := range Available.Sources {
			if v.c.has(p + "." + typ) {
				blocks = append(blocks, typ)
			}
		}
		if len(blocks) == 1 {
			meant := *s
			meant.Type = blocks[0]
			s = &meant
		}
	}
	if s.Type != "" && !slices.Contains(Available.Sources, s.Type) {
		v.errorf(p+".type", "source type %q is not available in this build (available: %s)", s.Type, strings.Join(Available.Sources, ", "))
	}
	// Each type's settings sit under a key named after it; another
	// type's block is ignored. A warning, not an error: nothing is lost,
	// and a configuration that ran keeps running.
	for _, typ := range Available.Sources {
		if s.Type != "" && s.Type != typ && v.c.has(p+"."+typ) {
			v.warnf(p+"."+typ, "applies to type: %s sources, not %s: ignored", typ, s.Type)
		}
	}
	if s.ErrorSink != "" {
		v.errorSinkRef(p+".error_sink", s.ErrorSink, sinks)
	} else if s.Format != "raw" && v.c.Service.ErrorSink == "" {
		v.errorf(p, "records that fail to decode have nowhere to go: set error_sink here or service.error_sink")
	}
	if s.EventTime.Field != "" && !jsonx.ParsePath(s.EventTime.Field).Valid() {
		v.errorf(p+".event_time.field", "invalid field path %q", s.EventTime.Field)
	}
	if s.MaxPending <= 0 {
		v.errorf(p+".max_pending", "must be greater than 0")
	}
	if s.BatchSize <= 0 {
		v.errorf(p+".batch_size", "must be greater than 0")
	}
	if s.Type == "file" && len(s.File.Paths) == 0 {
		v.errorf(p+".file.paths", "a file source needs at least one path (\"-\" for stdin)")
	}
	for j, path := range s.File.Paths {
		// filepath.Glob refuses a malformed pattern before it reads any
		// directory; run would stop on it.
		if _, err := filepath.Match(path, ""); err != nil {
			v.errorf(fmt.Sprintf("%s.file.paths[%d]", p, j), "bad glob %q: %v", path, err)
		}
	}
	if s.Type == "file" && s.File.MaxLineBytes <= 0 {
		v.errorf(p+".file.max_line_bytes", "must be greater than 0")
	}
	if s.Type == "firehose_http" {
		v.firehose(p+".firehose_http", &s.Firehose)
	}
	if s.Type == "archive" {
		a := s.Archive
		if a.URL == "" {
			v.errorf(p+".archive.url", "an archive source needs the url its raw sink writes to")
		} else if _, _, err := ParseObjectURL(a.URL); err != nil {
			v.errorf(p+".archive.url", "%v", err)
		}
		from, err := time.Parse(time.RFC3339, a.From)
		if err != nil {
			v.errorf(p+".archive.from", "want an RFC 3339 time, not %q", a.From)
		}
		if a.To != "" {
			if to, err := time.Parse(time.RFC3339, a.To); err != nil {
				v.errorf(p+".archive.to", "want an RFC 3339 time, not %q", a.To)
			} else if !to.After(from) {
				v.errorf(p+".archive.to", "must be after from")
			}
		}
	}
	if s.Type == "kafka" {
		k := s.Kafka
		if len(k.Brokers) == 0 {
			v.errorf(p+".kafka.brokers", "a kafka source needs at least one broker")
		}
		if len(k.Topics) == 0 {
			v.errorf(p+".kafka.topics", "a kafka source needs at least one topic")
		}
		if k.Group == "" {
			v.missing(p+".kafka", "group", ": offsets are committed to a consumer group")
		}
		if k.Start != "earliest" && k.Start != "latest" {
			if _, err := time.Parse(time.RFC3339, k.Start); err != nil {
				v.errorf(p+".kafka.start", "want earliest, latest or an RFC 3339 time, not %q", k.Start)
			}
		}
		switch k.SASL.Mechanism {
		case "plain", "scram-sha-256", "scram-sha-512":
			if k.SASL.Username == "" || k.SASL.Password == "" {
				v.errorf(p+".kafka.sasl", "%s needs username and password", k.SASL.Mechanism)
			}
		}
		if k.TLS.CAFile != "" {
			v.caFile(p+".kafka.tls.ca_file", k.TLS.CAFile)
		}
		if k.MetadataField != "" && !jsonx.ParsePath(k.MetadataField).Valid() {
			v.errorf(p+".kafka.metadata_field", "invalid field path %q", k.MetadataField)
		}
		if k.FetchMaxBytes < 1<<10 || k.FetchMaxBytes > 1<<30 {
			v.errorf(p+".kafka.fetch_max_bytes", "must be between 1KiB and 1GiB")
		}
	}
	if s.Type == "kinesis" {
		k := s.Kinesis
		if k.Stream == "" {
			v.missing(p+".kinesis", "stream", "")
		}
		if k.LeaseTable == "" {
			v.missing(p+".kinesis", "lease_table", ": shard leases and checkpoints live in DynamoDB")
		}
		if k.Start != "trim_horizon" && k.Start != "latest" {
			if _, err := time.Parse(time.RFC3339, k.Start); err != nil {
				v.errorf(p+".kinesis.start", "want trim_horizon, latest or an RFC 3339 time, not %q", k.Start)
			}
		}
		if k.LeaseDuration.D() < time.Second {
			v.errorf(p+".kinesis.lease_duration", "must be at least 1s")
		}
		if k.MaxLeasesPerTake <= 0 {
			v.errorf(p+".kinesis.max_leases_per_take", "must be greater than 0")
		}
	}
}

func (v *validator) route(i int, sources, sinks map[string]int) {
	r := &v.c.Routes[i]
	p := fmt.Sprintf("routes[%d]", i)
	for j, from := range r.From {
		if _, ok := sources[from]; !ok {
			v.errorf(fmt.Sprintf("%s.from[%d]", p, j), "unknown source %q%s", from, known(sources))
		}
	}
	for j, to := range r.To {
		if _, ok := sinks[to]; !ok {
			v.errorf(fmt.Sprintf("%s.to[%d]", p, j), "unknown sink %q%s", to, known(sinks))
		}
	}
	if r.ErrorSink != "" {
		v.errorSinkRef(p+".error_sink", r.ErrorSink, sinks)
	}
	if r.Match.Node != nil {
		x, err := r.Match.Value()
		if err != nil {
			v.errorf(p+".match", "%v", err)
		} else if _, err := routing.CompilePattern(x); err != nil {
			path := p + ".match"
			if pe, ok := err.(*routing.PatternError); ok && pe.Path != "" {
				path += "." + pe.Path
				err = fmt.Errorf("%s", pe.Msg)
			}
			v.errorf(path, "invalid event pattern: %v", err)
		}
	}
	canFail, csv := false, false
	for j, t := range r.Transforms {
		if v.transform(fmt.Sprintf("%s.transforms[%d]", p, j), &t) {
			canFail = true
		}
		if t.Kind == "json_to_csv" {
			csv = true
		}
	}
	if canFail && r.ErrorSink == "" && v.c.Service.ErrorSink == "" {
		for j, from := range r.From {
			if si, ok := sources[from]; ok && v.c.Sources[si].ErrorSink == "" {
				v.errorf(fmt.Sprintf("%s.from[%d]", p, j), "records that fail a transform in route %q have nowhere to go: set error_sink on the route, on source %q, or service.error_sink", r.Name, from)
			}
		}
	}
	for j, to := range r.To {
		if si, ok := sinks[to]; ok && v.c.Sinks[si].Format == "csv" && !csv {
			v.errorf(fmt.Sprintf("%s.to[%d]", p, j), "sink %q writes csv: add a json_to_csv transform to route %q to choose the columns", to, r.Name)
		}
	}
}

// transform checks one transform and reports whether it can fail a record.
func (v *validator) transform(p string, t *Transform) bool {
	field := func(path, s string) {
		if !jsonx.ParsePath(s).Valid() {
			v.errorf(path, "invalid field path %q", s)
		}
	}
	kp := p + "." + t.Kind
	switch t.Kind {
	case "explode":
		field(kp+".field", t.Explode.Field)
		return false
	case "severity":
		field(kp+".field", t.Severity.Field)
		for _, b := range []struct{ key, val string }{{"min", t.Severity.Min}, {"max", t.Severity.Max}} {
			if b.val == "" {
				continue
			}
			if err := CheckSeverity(t.Severity.Scale, b.val); err != nil {
				v.errorf(kp+"."+b.key, "%v", err)
			}
		}
		if lo, err := severity.ParseBound(t.Severity.Scale, t.Severity.Min); err == nil && t.Severity.Min != "" {
			if hi, err := severity.ParseBound(t.Severity.Scale, t.Severity.Max); err == nil && t.Severity.Max != "" {
				switch {
				case lo.Family != hi.Family:
					v.errorf(kp+".max", "min %q and max %q are on different scales", t.Severity.Min, t.Severity.Max)
				case lo.Family == severity.Numeric && lo.Num > hi.Num, lo.Family != severity.Numeric && lo.Level > hi.Level:
					v.errorf(kp+".max", "min %q is above max %q: the transform would keep no record", t.Severity.Min, t.Severity.Max)
				}
			}
		}
		if t.Severity.Min == "" && t.Severity.Max == "" && t.Severity.Target == "" {
			v.errorf(kp, "set min, max or target")
		}
		return true
	case "epoch_to_utc":
		field(kp+".field", t.EpochToUTC.Field)
		if t.EpochToUTC.Target != "" {
			field(kp+".target", t.EpochToUTC.Target)
		}
		if _, err := time.LoadLocation(t.EpochToUTC.Timezone); err != nil {
			v.errorf(kp+".timezone", "unknown time zone %q (want an IANA name such as UTC or Asia/Seoul)", t.EpochToUTC.Timezone)
		}
		return true
	case "json_to_csv":
		if len(t.JSONToCSV.Columns) == 0 {
			v.errorf(kp+".columns", "needs at least one column")
		}
		for j, c := range t.JSONToCSV.Columns {
			field(fmt.Sprintf("%s.columns[%d].name", kp, j), c.Name)
		}
		if d := t.JSONToCSV.Delimiter; len(d) != 1 || d == "\"" || d == "\n" || d == "\r" {
			v.errorf(kp+".delimiter", "must be one character other than a quote or line break")
		}
		return false
	case "set":
		for _, kn := range t.Set {
			field(kp+"."+kn.Key, kn.Key)
			// Decoded here as run decodes it, so a value run would refuse
			// (an alias bomb) fails validate too.
			if _, err := kn.Node.Value(); err != nil {
				v.errorf(kp+"."+kn.Key, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
			}
		}
		return false
	case "rename":
		for _, kv := range t.Rename {
			field(kp+"."+kv.Key, kv.Key)
			field(kp+"."+kv.Key, kv.Value)
		}
		return false
	case "drop":
		for j, d := range t.Drop {
			field(fmt.Sprintf("%s[%d]", kp, j), d)
		}
		return false
	case "jq":
		if _, err := jq.Compile(t.JQ); err != nil {
			v.errorf(kp, "%v", err)
		}
		return true
	}
	return false
}

var compressions = map[string][]string{
	"parquet": {"snappy", "zstd", "gzip", "none"},
	"ndjson":  {"gzip", "none"},
	"csv":     {"gzip", "none"},
	"raw":     {"gzip", "none"},
}

// DefaultCompression is the compression a format gets when none is set.
func DefaultCompression(format string) string {
	switch format {
	case "parquet":
		return "snappy"
	case "raw":
		return "gzip"
	}
	return "none"
}

func (v *validator) sink(i int, sinks map[string]int) {
	s := &v.c.Sinks[i]
	p := fmt.Sprintf("sinks[%d]", i)
	if s.Type != "" && !slices.Contains(Available.Sinks, s.Type) {
		v.errorf(p+".type", "sink type %q is not available in this build (available: %s)", s.Type, strings.Join(Available.Sinks, ", "))
		return
	}
	if s.Type == "" {
		// The type is missing or did not decode (reported): when the
		// keys say which type was meant, check the sink as that type, so
		// that its other mistakes come in this pass.
		s3Keys, osKeys := v.c.has(p+".url") || v.c.has(p+".format"), v.c.has(p+".endpoints") || v.c.has(p+".index")
		if s3Keys != osKeys {
			meant := *s
			meant.Type = map[bool]string{true: "s3", false: "opensearch"}[s3Keys]
			s = &meant
		}
	}
	for _, key := range sinkKeys() {
		switch {
		case s.Type == "s3" && openSearchOnly[key] && key != "error_sink" && v.c.has(p+"."+key):
			v.warnf(p+"."+key, "applies to type: opensearch sinks, not s3: ignored")
		case s.Type == "opensearch" && !openSearchOnly[key] && !bothSinks[key] && v.c.has(p+"."+key):
			v.warnf(p+"."+key, "applies to type: s3 sinks, not opensearch: ignored")
		}
	}
	if s.Type == "opensearch" {
		v.openSearch(p, s, sinks)
		return
	}
	if s.Type != "s3" {
		return
	}
	if s.ErrorSink != "" {
		// The key is shared with opensearch sinks; here it is ignored (a
		// warning, as for the keys of another type below).
		v.warnf(p+".error_sink", "ignored: an s3 sink's own failures go to its error_prefix, not to an error sink (error_sink is for opensearch sinks)")
	}
	if s.Compression == "" {
		s.Compression = DefaultCompression(s.Format)
	} else if !slices.Contains(compressions[s.Format], s.Compression) {
		v.errorf(p+".compression", "compression %q does not apply to format %s (want one of: %s)", s.Compression, s.Format, strings.Join(compressions[s.Format], ", "))
	}
	if s.URL == "" {
		v.missing(p, "url", "")
	} else if _, loc, err := ParseObjectURL(s.URL); err != nil {
		v.errorf(p+".url", "%v", err)
	} else if slices.Contains(strings.Split(loc, "/"), "..") {
		v.errorf(p+".url", "%q has a \"..\" segment: name the directory or prefix itself", s.URL)
	} else if _, prefix, _ := strings.Cut(loc, "/"); strings.HasPrefix(s.URL, "s3://") {
		// Keys under the URL's prefix are checked by the store; the
		// prefix itself only here (s3://lake//x/ wrote "/x/…").
		if err := template.CheckPrefix(prefix); err != nil {
			v.errorf(p+".url", "%q has a prefix that is not a clean relative path: %s", s.URL, strings.TrimPrefix(err.Error(), template.ErrUnsafeKey.Error()+": "))
		}
	}
	if s.StorageClass != "" && !slices.Contains(storageClasses, s.StorageClass) {
		v.errorf(p+".storage_class", "unknown storage class %q (want one of: %s)", s.StorageClass, strings.Join(storageClasses, ", "))
	}
	for _, kv := range s.PartitionKeys {
		if _, err := jq.Compile(kv.Value); err != nil {
			v.errorf(p+".partition_keys."+kv.Key, "%v", err)
		}
	}
	checkTpl := func(key, src string, errorPrefix bool) {
		// Every expression's mistake, then the checks of those that parsed.
		tpl, errs := template.ParseAll(src)
		for _, err := range errs {
			v.errorf(p+"."+key, "%v", err)
		}
		for _, k := range tpl.Keys() {
			if _, ok := s.PartitionKeys.Get(k); !ok {
				v.errorf(p+"."+key, "!{partitionKeyFromQuery:%s} names a key not in partition_keys%s", k, keyList(s.PartitionKeys))
			}
		}
		if errorPrefix && len(tpl.Keys()) > 0 {
			v.errorf(p+"."+key, "error_prefix cannot use partition keys: a record that failed may have none")
		}
		if !errorPrefix && tpl.UsesErrorType() {
			v.errorf(p+"."+key, "!{error-output-type} belongs in error_prefix")
		}
		// Record values are escaped when rendered; what the template
		// itself puts in a key must keep it under the url. (A template
		// with a bad expression has gaps: its sample says nothing.)
		if len(errs) > 0 {
			return
		}
		if err := template.CheckPrefix(tpl.Sample(errorOutputTypes[0])); err != nil {
			v.errorf(p+"."+key, "%q would write outside the sink's url: %s", src, strings.TrimPrefix(err.Error(), template.ErrUnsafeKey.Error()+": "))
		}
	}
	if s.Prefix != "" {
		checkTpl("prefix", s.Prefix, false)
	}
	if s.ErrorPrefix != "" {
		checkTpl("error_prefix", s.ErrorPrefix, true)
	}
	if s.Glue.Database != "" || s.Glue.Table != "" {
		switch {
		case s.Glue.Database == "" || s.Glue.Table == "":
			v.errorf(p+".glue", "set both database and table")
		case !strings.HasPrefix(s.URL, "s3://"):
			v.errorf(p+".glue", "Glue partitions need an s3:// url")
		case len(s.PartitionKeys) == 0:
			v.errorf(p+".glue", "Glue registration needs partition_keys")
		case s.Prefix != "":
			v.errorf(p+".glue", "Glue registration needs the default Hive-style prefix (leave prefix unset)")
		case s.Format != "parquet":
			v.errorf(p+".glue", "Glue registration describes Parquet objects (its SerDe is Parquet's), not %s", s.Format)
		}
	}
	if s.Format != "parquet" {
		// These shape Parquet rows only (the objstore Parquet layout).
		for _, key := range []string{"schema", "extra_column", "max_value_bytes"} {
			if v.c.has(p + "." + key) {
				v.warnf(p+"."+key, "applies to format: parquet sinks, not %s: ignored", s.Format)
			}
		}
	}
	if s.Format == "parquet" && len(s.Schema) == 0 {
		v.errorf(p+".schema", "format parquet needs a schema")
	}
	cols := map[string]int{}
	for j, c := range s.Schema {
		cp := fmt.Sprintf("%s.schema[%d]", p, j)
		if c.Name != "" && !jsonx.ParsePath(c.Name).Valid() {
			v.errorf(cp+".name", "invalid field path %q", c.Name)
		}
		col := c.Column
		if col == "" {
			col = c.Name
		}
		if k, dup := cols[col]; dup {
			v.errorf(cp, "duplicate column %q (also schema[%d])", col, k)
		}
		if s.Glue.Table != "" && strings.ContainsAny(col, ".:") {
			v.errorf(cp, "column %q: Glue registers it and Athena refuses '.' and ':' in column names; name the column (column: %s)",
				col, strings.ToLower(strings.NewReplacer(".", "_", ":", "_").Replace(col)))
		}
		cols[col] = j
	}
	if s.ExtraColumn != "" {
		if _, dup := cols[s.ExtraColumn]; dup {
			v.errorf(p+".extra_column", "column %q is also in the schema", s.ExtraColumn)
		}
	}
	if s.Buffer.MaxBytes <= 0 {
		v.errorf(p+".buffer.max_bytes", "must be greater than 0")
	}
	if s.Buffer.MaxRecords <= 0 {
		v.errorf(p+".buffer.max_records", "must be greater than 0")
	}
	if s.Buffer.Interval.D() <= 0 {
		v.errorf(p+".buffer.interval", "must be greater than 0")
	}
	if s.MaxOpenPartitions <= 0 {
		v.errorf(p+".max_open_partitions", "must be greater than 0")
	}
	if s.Concurrency <= 0 {
		v.errorf(p+".concurrency", "must be greater than 0")
	}
	if s.Retry.MaxElapsed.D() <= 0 {
		v.errorf(p+".retry.max_elapsed", "must be greater than 0")
	}
	if s.MaxBufferedRecs <= 0 {
		v.errorf(p+".max_buffered_records", "must be greater than 0")
	}
	if s.MaxBufferedBytes <= 0 {
		v.errorf(p+".max_buffered_bytes", "must be greater than 0")
	}
	if s.MaxSpillBytes < 0 {
		v.errorf(p+".max_spill_bytes", "must not be negative")
	}
	if s.MaxSpillRecs < 0 {
		v.errorf(p+".max_spill_records", "must not be negative")
	}
	if s.SmallObjectBytes < 0 {
		v.errorf(p+".small_object_bytes", "must not be negative")
	}
	if s.MaxValueBytes <= 0 || s.MaxValueBytes > 1<<30 {
		// A Parquet page's size is an int32, and one value is one page.
		v.errorf(p+".max_value_bytes", "must be between 1 and 1GiB")
	}
}

var storageClasses = []string{"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE", "GLACIER_IR", "EXPRESS_ONEZONE"}

func keyList(m KeyMap) string {
	if len(m) == 0 {
		return " (no partition_keys are defined)"
	}
	keys := make([]string, len(m))
	for i, kv := range m {
		keys[i] = kv.Key
	}
	return " (defined: " + strings.Join(keys, ", ") + ")"
}

// ParseObjectURL splits an object-store URL into its scheme ("file" or
// "s3") and location: a directory for file, bucket/prefix for s3.
func ParseObjectURL(raw string) (scheme, location string, err error) {
	switch {
	case strings.HasPrefix(raw, "file://"):
		u, err := url.Parse(raw)
		if err != nil || u.Host != "" && u.Host != "localhost" {
			return "", "", fmt.Errorf("invalid file URL %q (want file:///absolute/path or file:relative/path)", raw)
		}
		return "file", u.Path, nil
	case strings.HasPrefix(raw, "file:"):
		rest := strings.TrimPrefix(raw, "file:")
		if rest == "" {
			return "", "", fmt.Errorf("invalid file URL %q: no path", raw)
		}
		return "file", rest, nil
	case strings.HasPrefix(raw, "s3://"):
		loc := strings.TrimPrefix(raw, "s3://")
		bucket, _, _ := strings.Cut(loc, "/")
		if bucket == "" || strings.ContainsAny(bucket, " _") || bucket != strings.ToLower(bucket) {
			return "", "", fmt.Errorf("invalid S3 URL %q: want s3://bucket/prefix with a lowercase bucket name", raw)
		}
		return "s3", loc, nil
	default:
		return "", "", fmt.Errorf("unsupported URL %q (want s3://bucket/prefix, file:///abs/path or file:relative/path)", raw)
	}
}

// CheckSeverity reports whether s is a valid severity bound on scale.
func CheckSeverity(scale, s string) error {
	_, err := severity.ParseBound(scale, s)
	return err
}

func (v *validator) openSearch(p string, s *Sink, sinks map[string]int) {
	if len(s.Endpoints) == 0 {
		v.missing(p, "endpoints", "")
	}
	for j, e := range s.Endpoints {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.errorf(fmt.Sprintf("%s.endpoints[%d]", p, j), "%q is not an http(s) URL", e)
		}
	}
	if s.Index == "" {
		v.missing(p, "index", "")
	} else if tpl, err := template.Parse(s.Index); err != nil {
		v.errorf(p+".index", "%v", err)
	} else if len(tpl.Keys()) > 0 || tpl.UsesErrorType() {
		v.errorf(p+".index", "an index name can use !{timestamp:...} and !{arrival:...} only")
	} else if name := indexSample(tpl); strings.ToLower(name) != name {
		v.errorf(p+".index", "index names must be lowercase (this one renders as %q)", name)
	} else if err := IndexNameError(name); err != nil {
		v.errorf(p+".index", "%v (this one renders as %q)", err, name)
	}
	if s.ID != "" {
		if _, err := jq.Compile(s.ID); err != nil {
			v.errorf(p+".id", "%v", err)
		}
	}
	switch s.Auth.Type {
	case "basic":
		if s.Auth.Username == "" || s.Auth.Password == "" {
			v.errorf(p+".auth", "basic auth needs username and password")
		}
	case "sigv4":
		if s.Auth.Username != "" || s.Auth.Password != "" {
			v.errorf(p+".auth", "sigv4 signs with AWS credentials; username and password do not apply")
		}
	}
	if s.Bulk.MaxDocs <= 0 {
		v.errorf(p+".bulk.max_docs", "must be greater than 0")
	}
	if s.Bulk.MaxBytes <= 0 {
		v.errorf(p+".bulk.max_bytes", "must be greater than 0")
	}
	if s.Bulk.Concurrency <= 0 {
		v.errorf(p+".bulk.concurrency", "must be greater than 0")
	}
	if s.Bulk.Interval.D() <= 0 {
		v.errorf(p+".bulk.interval", "must be greater than 0")
	}
	if s.Retry.MaxElapsed.D() <= 0 {
		v.errorf(p+".retry.max_elapsed", "must be greater than 0")
	}
	if s.ErrorSink != "" {
		v.errorSinkRef(p+".error_sink", s.ErrorSink, sinks)
	} else if v.c.Service.ErrorSink == "" {
		v.errorf(p, "documents OpenSearch rejects have nowhere to go: set error_sink here or service.error_sink")
	}
	for _, b := range []struct {
		key string
		nf  NamedFile
	}{{"index_template", s.IndexTemplate}, {"ingest_pipeline", s.IngestPipeline}} {
		switch {
		case (b.nf.Name == "") != (b.nf.File == ""):
			v.errorf(p+"."+b.key, "set both name and file")
		case b.nf.File != "":
			if data, err := os.ReadFile(b.nf.File); err != nil {
				v.errorf(p+"."+b.key+".file", "%v", err)
			} else if !json.Valid(data) {
				v.errorf(p+"."+b.key+".file", "%s is not valid JSON", b.nf.File)
			}
		}
	}
	if s.TLS.CAFile != "" {
		v.caFile(p+".tls.ca_file", s.TLS.CAFile)
	}
}

// listenAddr checks that addr is host:port with a port net.Listen takes
// (a number up to 65535 or a service name), as run would; an address in
// use or a host that is not this machine's is found only by run.
func (v *validator) listenAddr(path, addr string) {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err != nil {
		v.errorf(path, "%q is not host:port (%v)", addr, err)
	}
}

// caFile checks that file holds a PEM certificate, as the client that
// reads it at run time requires.
func (v *validator) caFile(path, file string) {
	pem, err := os.ReadFile(file)
	switch {
	case err != nil:
		v.errorf(path, "%v", err)
	case !x509.NewCertPool().AppendCertsFromPEM(pem):
		v.errorf(path, "%s holds no PEM certificate", file)
	}
}

// IndexNameError says why name is not a legal OpenSearch index name, or
// returns nil: lowercase, none of \ / * ? " < > | , # : or a space, not
// starting with - _ or +, not . or .., at most 255 bytes.
func IndexNameError(name string) error {
	switch {
	case name == "":
		return errors.New("an index name cannot be empty")
	case name == "." || name == "..":
		return fmt.Errorf("an index name cannot be %q", name)
	case len(name) > 255:
		return fmt.Errorf("an index name is at most 255 bytes, not %d", len(name))
	case strings.ContainsAny(name[:1], "-_+"):
		return fmt.Errorf("an index name cannot start with %q", name[:1])
	}
	if i := strings.IndexAny(name, "\\/*?\"<>| ,#:"); i >= 0 {
		return fmt.Errorf("an index name cannot contain %q", name[i:i+1])
	}
	if strings.ToLower(name) != name {
		return errors.New("an index name must be lowercase")
	}
	return nil
}

// indexSample renders an index template for a fixed time: month names
// (MMM) and literals must come out lowercase.
func indexSample(tpl *template.Template) string {
	at := time.Date(2024, 11, 3, 7, 0, 0, 0, time.UTC)
	return string(tpl.Append(nil, template.Values{Time: at, Arrival: at}))
}
