package config

import (
	"path"
	"path/filepath"
	"strings"
)

// DefaultErrorPrefix is the prefix template of a sink's error records
// under its default error location (see Sink.ErrorLocation).
const DefaultErrorPrefix = "!{error-output-type}/!{timestamp:yyyy/MM/dd}/"

// ErrorLocation returns where an s3 sink writes its error records: the URL
// of the store they go to, and the prefix template under it.
//
// With error_prefix set, that is the sink's url and error_prefix. Unset,
// error records go beside the data, to "<url>-errors/" (s3://b/lake/app-logs/
// → s3://b/lake/app-logs-errors/), so that readers of a table location never
// meet an error file, as Firehose's bucket-relative error prefix keeps them
// out of the data prefix. A url that is a bucket or file-system root has no
// such sibling; its errors go under errors/ inside it, and Validate warns
// when that is a Parquet table location. A sink that no route writes to is
// only an error output, and keeps its records under its url.
func (s *Sink) ErrorLocation() (url, prefix string) {
	if s.ErrorPrefix != "" {
		return s.URL, s.ErrorPrefix
	}
	if !s.routed && s.Format != "parquet" {
		// A pure error output (no route writes to it) holds nothing but
		// error records: they go under its own url.
		return s.URL, DefaultErrorPrefix
	}
	if sib, ok := siblingURL(s.URL, "-errors"); ok {
		return sib, DefaultErrorPrefix
	}
	return s.URL, "errors/" + DefaultErrorPrefix
}

// siblingURL returns the url of the directory beside raw's last path
// element, named after it with suffix added.
func siblingURL(raw, suffix string) (string, bool) {
	scheme, loc, err := ParseObjectURL(raw)
	if err != nil {
		return "", false
	}
	switch scheme {
	case "s3":
		bucket, prefix, _ := strings.Cut(loc, "/")
		prefix = strings.Trim(path.Clean("/"+prefix), "/")
		if prefix == "" || path.Base(prefix) == ".." {
			return "", false
		}
		return "s3://" + bucket + "/" + prefix + suffix + "/", true
	default:
		clean := path.Clean(loc)
		if clean == "/" || clean == "." || path.Base(clean) == ".." {
			return "", false
		}
		lead := "file:"
		if strings.HasPrefix(raw, "file://") {
			lead = "file://"
		}
		return lead + clean + suffix + "/", true
	}
}

// locationKey normalizes an object-store location (a url, or a url joined
// with a rendered prefix) for comparing: scheme, then an absolute, clean
// path ending in '/'.
func locationKey(raw string) (string, bool) {
	scheme, loc, err := ParseObjectURL(raw)
	if err != nil {
		return "", false
	}
	if scheme == "file" {
		abs, err := filepath.Abs(filepath.FromSlash(loc))
		if err != nil {
			return "", false
		}
		loc = filepath.ToSlash(abs)
	}
	loc = path.Clean("/" + loc)
	if !strings.HasSuffix(loc, "/") {
		loc += "/"
	}
	return scheme + ":/" + loc, true
}

// joinURL appends a rendered prefix to an object-store url.
func joinURL(url, prefix string) string {
	if !strings.HasSuffix(url, "/") {
		url += "/"
	}
	return url + prefix
}
