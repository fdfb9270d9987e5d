package template

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	at := time.Date(2024, 11, 3, 7, 4, 5, 123e6, time.UTC)
	names := []string{"project_id", "year"}
	keys := [][]byte{[]byte("P-1"), []byte("2024")}
	tests := []struct {
		give, want string
	}{
		{"year=!{partitionKeyFromQuery:year}/p=!{partitionKeyFromQuery:project_id}/", "year=2024/p=P-1/"},
		{"errors/!{error-output-type}/!{timestamp:yyyy/MM/dd}/", "errors/schema-mismatch/2024/11/03/"},
		{"!{firehose:error-output-type}/!{timestamp:yyyy-MM-dd'T'HH:mm:ss.SSS}", "schema-mismatch/2024-11-03T07:04:05.123"},
		{"!{timestamp:yy/M/d/h a}", "24/11/3/7 AM"},
		{"plain/", "plain/"},
	}
	for _, tt := range tests {
		tpl, err := Parse(tt.give)
		if err != nil {
			t.Fatalf("Parse(%q): %v", tt.give, err)
		}
		if err := tpl.Bind(names); err != nil {
			t.Fatal(err)
		}
		got := tpl.Append(nil, Values{Keys: keys, Time: at, ErrorType: "schema-mismatch"})
		if string(got) != tt.want {
			t.Errorf("%q rendered %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ give, want string }{
		{"!{timestamp:yyyy/QQ}", `timestamp format "yyyy/QQ": unsupported letter 'Q' (use y, M, d, H, h, m, s, S, a)`},
		{"a/!{firehose:random-string}", "!{firehose:random-string} is not supported: object names derive from source positions so that re-processing overwrites"},
		{"!{partitionKeyFromQuery:year", `unterminated !{ in "!{partitionKeyFromQuery:year"`},
		{"!{nope}", "unknown template expression !{nope} (want partitionKeyFromQuery:KEY, timestamp:FORMAT, arrival:FORMAT or error-output-type)"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.give)
		if err == nil || err.Error() != tt.want {
			t.Errorf("Parse(%q) = %v, want %q", tt.give, err, tt.want)
		}
	}
}

// TestHiveEscapeEveryByte: each byte alone, and between letters, is
// escaped exactly when Hive's directory-name escaping (control bytes, DEL
// and "#%'*/:=?\{[]^) or the dots rule says so.
func TestHiveEscapeEveryByte(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		esc := b < 0x20 || b == 0x7f || strings.IndexByte("\"#%'*/:=?\\{[]^", b) >= 0 || b == '.'
		want := string([]byte{b})
		if esc {
			want = fmt.Sprintf("%%%02X", b)
		}
		if got := string(HiveEscape(nil, []byte{b})); got != want {
			t.Errorf("HiveEscape(%q) = %q, want %q", b, got, want)
		}
		if b == '.' {
			want = "."
		}
		if got := string(HiveEscape([]byte("k="), []byte{'a', b, 'z'})); got != "k=a"+want+"z" {
			t.Errorf("HiveEscape(%q) = %q, want %q", []byte{'a', b, 'z'}, got, "k=a"+want+"z")
		}
	}
}

func TestHiveEscape(t *testing.T) {
	tests := []struct{ give, want string }{
		{"a/b=c d%", "a%2Fb%3Dc d%25"},
		{"..", "%2E%2E"},
		{".", "%2E"},
		{"...", "%2E%2E%2E"},
		{"../../etc", "..%2F..%2Fetc"},
		{"/abs", "%2Fabs"},
		{`a\b`, "a%5Cb"},
		{"a\x00b", "a%00b"},
		{"v1.2", "v1.2"},
		{".hidden", ".hidden"},
	}
	for _, tt := range tests {
		if got := string(HiveEscape(nil, []byte(tt.give))); got != tt.want {
			t.Errorf("HiveEscape(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestAppendPrefixStaysInside: values from records never make a prefix
// that leaves the root (issue 9: {"a":"..","b":".."} with
// "!{partitionKeyFromQuery:a}/!{partitionKeyFromQuery:b}/" wrote two
// directories above the lake).
func TestAppendPrefixStaysInside(t *testing.T) {
	tests := []struct {
		tpl     string
		a, b    string
		want    string
		wantErr bool
	}{
		{tpl: "!{partitionKeyFromQuery:a}/!{partitionKeyFromQuery:b}/", a: "..", b: "..", want: "%2E%2E/%2E%2E/"},
		{tpl: "!{partitionKeyFromQuery:a}!{partitionKeyFromQuery:b}/", a: ".", b: ".", want: "%2E%2E/"},
		{tpl: "!{partitionKeyFromQuery:a}/", a: "/etc", want: "%2Fetc/"},
		{tpl: "a=!{partitionKeyFromQuery:a}/b=!{partitionKeyFromQuery:b}/", a: "../x", b: `\`, want: "a=..%2Fx/b=%5C/"},
		{tpl: "!{partitionKeyFromQuery:a}/", a: "", wantErr: true},
		{tpl: "x/!{partitionKeyFromQuery:a}/y/", a: "", wantErr: true},
	}
	for _, tt := range tests {
		tpl, err := Parse(tt.tpl)
		if err != nil {
			t.Fatal(err)
		}
		if err := tpl.Bind([]string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
		got, err := tpl.AppendPrefix([]byte("d"), Values{Keys: [][]byte{[]byte(tt.a), []byte(tt.b)}})
		if tt.wantErr {
			if !errors.Is(err, ErrUnsafeKey) || string(got) != "d" {
				t.Errorf("%q with a=%q b=%q = %q, %v; want ErrUnsafeKey and dst untouched", tt.tpl, tt.a, tt.b, got, err)
			}
			continue
		}
		if err != nil || string(got) != "d"+tt.want {
			t.Errorf("%q with a=%q b=%q = %q, %v; want %q", tt.tpl, tt.a, tt.b, got, err, "d"+tt.want)
		}
	}
}

// TestAppendPrefixLength: a value that would make a segment or the key
// longer than a store takes fails its record (ErrKeyTooLong) instead of
// being rendered: a 5,000-byte project_id once made every write of its
// object fail with ENAMETOOLONG until retry.max_elapsed stopped the run.
func TestAppendPrefixLength(t *testing.T) {
	x, slash := strings.Repeat("x", 300), strings.Repeat("/", 100)
	tests := []struct {
		tpl     string
		a, b    string
		wantErr bool
	}{
		{tpl: "a=!{partitionKeyFromQuery:a}/", a: x[:253]},                // 255 bytes
		{tpl: "a=!{partitionKeyFromQuery:a}/", a: x[:254], wantErr: true}, // 256
		{tpl: "a=!{partitionKeyFromQuery:a}/", a: slash[:84]},             // %2F each: 2 + 252
		{tpl: "a=!{partitionKeyFromQuery:a}/", a: slash[:85], wantErr: true},
		{tpl: "a=!{partitionKeyFromQuery:a}", a: x[:254], wantErr: true}, // the last segment too
		{tpl: "a=!{partitionKeyFromQuery:a}/b=!{partitionKeyFromQuery:b}/c=!{partitionKeyFromQuery:a}/d=!{partitionKeyFromQuery:b}/", a: x[:180], b: x[:180]},                // 732 bytes
		{tpl: "a=!{partitionKeyFromQuery:a}/b=!{partitionKeyFromQuery:b}/c=!{partitionKeyFromQuery:a}/d=!{partitionKeyFromQuery:b}/", a: x[:200], b: x[:200], wantErr: true}, // 812
	}
	for _, tt := range tests {
		tpl, err := Parse(tt.tpl)
		if err != nil {
			t.Fatal(err)
		}
		if err := tpl.Bind([]string{"a", "b"}); err != nil {
			t.Fatal(err)
		}
		got, err := tpl.AppendPrefix([]byte("d"), Values{Keys: [][]byte{[]byte(tt.a), []byte(tt.b)}})
		if tt.wantErr {
			if !errors.Is(err, ErrKeyTooLong) || string(got) != "d" || len(err.Error()) > 400 {
				t.Errorf("a of %d bytes, b of %d: %d bytes, %v; want ErrKeyTooLong in a short message and dst untouched", len(tt.a), len(tt.b), len(got), err)
			}
			continue
		}
		if err != nil {
			t.Errorf("a of %d bytes, b of %d: %v", len(tt.a), len(tt.b), err)
		}
	}
}

func TestCheckKey(t *testing.T) {
	tests := []struct {
		give      string
		key, pref bool // valid as a key, as a prefix
	}{
		{"a/b.parquet", true, true},
		{"a/b/", false, true},
		{"", false, true},
		{"../x", false, false},
		{"a/../../x", false, false},
		{"a/./b", false, false},
		{".", false, false},
		{"/abs", false, false},
		{"/", false, false},
		{"a//b", false, false},
		{"a//", false, false},
		{`a\b`, false, false},
		{"a\x00b", false, false},
		{"a..b/c.", true, true},
		{".hidden/x", true, true},
	}
	for _, tt := range tests {
		if err := CheckKey(tt.give); (err == nil) != tt.key {
			t.Errorf("CheckKey(%q) = %v, want valid %v", tt.give, err, tt.key)
		}
		if err := CheckPrefix([]byte(tt.give)); (err == nil) != tt.pref {
			t.Errorf("CheckPrefix(%q) = %v, want valid %v", tt.give, err, tt.pref)
		}
	}
}

// renderTemplates are prefixes the key renderer is fuzzed with besides the
// fuzzer's own: the examples and the usual layouts.
var renderTemplates = []string{
	"!{partitionKeyFromQuery:a}/!{partitionKeyFromQuery:b}/",
	"!{partitionKeyFromQuery:a}!{partitionKeyFromQuery:b}/",
	"a=!{partitionKeyFromQuery:a}/b=!{partitionKeyFromQuery:b}/",
	"!{partitionKeyFromQuery:a}",
	".!{partitionKeyFromQuery:a}/!{timestamp:yyyy/MM/dd}/",
	"x/!{partitionKeyFromQuery:b}.!{partitionKeyFromQuery:a}/",
}

// FuzzRenderKey: for any record values, a prefix template that validation
// accepts (its Sample is clean) renders a key prefix that stays under the
// root, and does so by escaping: a non-empty value is never refused, unless
// it makes the key too long for a store.
func FuzzRenderKey(f *testing.F) {
	for _, seed := range []struct{ src, a, b string }{
		{"", "..", ".."}, {"", ".", "."}, {"", "/", ""}, {"", "..\\..", "a/../../b"},
		{"p/!{partitionKeyFromQuery:a}/", "\x00", "%2E%2E"}, {"!{partitionKeyFromQuery:a}!{partitionKeyFromQuery:a}/", ".", "x"},
	} {
		f.Add(seed.src, seed.a, seed.b, int64(1730617200))
	}
	f.Fuzz(func(t *testing.T, src, a, b string, sec int64) {
		srcs := renderTemplates
		if src != "" {
			srcs = []string{src}
		}
		for _, src := range srcs {
			tpl, err := Parse(src)
			if err != nil || tpl.Bind([]string{"a", "b"}) != nil || CheckPrefix(tpl.Sample("processing-failed")) != nil {
				continue // validation refuses it
			}
			v := Values{Keys: [][]byte{[]byte(a), []byte(b)}, Time: time.Unix(sec, 0), Arrival: time.Unix(sec, 0), ErrorType: "processing-failed"}
			got, err := tpl.AppendPrefix(nil, v)
			if err != nil {
				if a != "" && b != "" && !errors.Is(err, ErrKeyTooLong) {
					t.Fatalf("%q refused non-empty values a=%q b=%q: %v", src, a, b, err)
				}
				continue
			}
			if !insideRoot(string(got) + "src+f+000000000001-000000000002.ndjson") {
				t.Fatalf("%q with a=%q b=%q rendered %q, which leaves the root", src, a, b, got)
			}
		}
	})
}

// insideRoot is the fuzz oracle, independent of CheckKey: key, joined under
// a root, cleans to a path strictly inside it, and neither a local file
// system nor an S3 server would read any segment of it as a directory move.
func insideRoot(key string) bool {
	if strings.HasPrefix(key, "/") || strings.ContainsAny(key, "\\\x00") {
		return false
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	joined := path.Join("/root", key)
	return strings.HasPrefix(joined, "/root/") && joined == "/root/"+key
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"year=!{partitionKeyFromQuery:year}/", "!{timestamp:yyyy/MM/dd'T'HH}", "!{arrival:yy}", "!{", "!{firehose:error-output-type}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := Parse(src)
		if err != nil {
			return
		}
		keys := tpl.Keys()
		if err := tpl.Bind(keys); err != nil {
			t.Fatal(err)
		}
		vals := make([][]byte, len(keys))
		tpl.Append(nil, Values{Keys: vals, Time: time.Unix(1730617200, 0), ErrorType: "processing-failed"})
	})
}

// TestExpressionsParse keeps the documented expressions accepted.
func TestExpressionsParse(t *testing.T) {
	for _, e := range Expressions {
		if _, err := Parse(e.Example); err != nil {
			t.Errorf("%s: %v", e.Example, err)
		}
	}
}

// TestCheckKeyFindsTheFirstProblem: CheckKey, which searches with
// IndexByte, reports what a scan from the start reports first, for every
// key of up to six bytes over the bytes that matter, as string and []byte.
func TestCheckKeyFindsTheFirstProblem(t *testing.T) {
	scan := func(key string) error {
		if len(key) == 0 {
			return fmt.Errorf("%w: it is empty", ErrUnsafeKey)
		}
		if key[0] == '/' {
			return fmt.Errorf("%w: it starts with /", ErrUnsafeKey)
		}
		seg := 0
		for i := 0; i <= len(key); i++ {
			if i < len(key) && key[i] == 0 {
				return fmt.Errorf("%w: it holds a NUL byte", ErrUnsafeKey)
			}
			if i < len(key) && key[i] == '\\' {
				return fmt.Errorf("%w: it holds a backslash, a separator on some file systems", ErrUnsafeKey)
			}
			if i < len(key) && key[i] != '/' {
				continue
			}
			switch key[seg:i] {
			case "":
				return fmt.Errorf("%w: it has an empty segment (//)", ErrUnsafeKey)
			case ".":
				return fmt.Errorf("%w: it has a \".\" segment", ErrUnsafeKey)
			case "..":
				return fmt.Errorf("%w: it has a \"..\" segment", ErrUnsafeKey)
			}
			seg = i + 1
		}
		return nil
	}
	alphabet := []byte{'a', '/', '.', '\\', 0}
	var gen func(prefix []byte)
	gen = func(prefix []byte) {
		key := string(prefix)
		want := fmt.Sprint(scan(key))
		if got := fmt.Sprint(CheckKey(key)); got != want {
			t.Errorf("CheckKey(%q) = %s, want %s", key, got, want)
		}
		if got := fmt.Sprint(CheckKey([]byte(key))); got != want {
			t.Errorf("CheckKey([]byte(%q)) = %s, want %s", key, got, want)
		}
		type named string
		if got := fmt.Sprint(CheckKey(named(key))); got != want {
			t.Errorf("CheckKey(named(%q)) = %s, want %s", key, got, want)
		}
		if len(prefix) == 6 {
			return
		}
		for _, c := range alphabet {
			gen(append(prefix, c))
		}
	}
	gen(nil)
}
