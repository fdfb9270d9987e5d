package pipeline

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sluice-data/sluice/internal/testutil"
)

// TestBadInputFilesGoToTheErrorOutput runs a glob over good files and
// every kind of unreadable one: every good line is written, every bad part
// is one error record (Sluice.ReadFailed) naming the file, the lines and
// the reason, the counts balance, and a second run writes nothing new.
func TestBadInputFilesGoToTheErrorOutput(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	mustDo(t, os.Mkdir(in, 0o755))
	put := func(name string, b []byte) { mustDo(t, os.WriteFile(filepath.Join(in, name), b, 0o644)) }
	gz := func(s string) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write([]byte(s))
		zw.Close()
		return buf.Bytes()
	}
	put("a.ndjson", []byte(`{"f":"a","n":1}`+"\n"+`{"f":"a","n":2}`+"\n"))
	// b: 400 lines gzipped, cut to its first half.
	var lines strings.Builder
	for i := range 400 {
		fmt.Fprintf(&lines, `{"f":"b","n":%d,"pad":"%x"}`+"\n", i, i*104729)
	}
	full := gz(lines.String())
	put("b.ndjson.gz", full[:len(full)/2])
	put("c.ndjson.gz", []byte(`{"f":"c"}`+"\n"))
	mustDo(t, os.Mkdir(filepath.Join(in, "d.ndjson"), 0o755))
	mustDo(t, os.Symlink(filepath.Join(in, "gone"), filepath.Join(in, "e.ndjson")))
	mustDo(t, os.Symlink(filepath.Join(in, "f.ndjson"), filepath.Join(in, "f.ndjson")))
	put("g.ndjson", []byte(`{"f":"g","n":1}`+"\n"+`{"f":"g","long":"`+strings.Repeat("x", 100)+`"}`+"\n"+`{"f":"g","n":3}`+"\n"))

	y := fmt.Sprintf(`
service: {http_listen: "", error_sink: errors}
sources:
  - {name: s, type: file, format: json, batch_size: 16, file: {paths: ["%s/*"], max_line_bytes: 64}}
routes:
  - {name: all, from: [s], to: [out]}
sinks:
  - {name: out, type: s3, url: "file:%s/out/", format: ndjson}
  - {name: errors, type: s3, url: "file:%s/errors/", format: ndjson}
`, in, dir, dir)
	sum := runYAML(t, y)
	if i, o := sum.Balance(); i != o {
		t.Fatalf("balance %d != %d: %+v", i, o, sum)
	}
	written := map[string]int{}
	for _, l := range readNDJSON(t, filepath.Join(dir, "out")) {
		written[l["f"].(string)]++
	}
	gotB := written["b"]
	if gotB == 0 || gotB >= 400 || written["a"] != 2 || written["g"] != 2 || len(written) != 3 {
		t.Errorf("written per file = %v", written)
	}
	var msgs []string
	for _, e := range readNDJSON(t, filepath.Join(dir, "errors")) {
		if e["errorCode"] != "Sluice.ReadFailed" || e["errorOutputType"] != "processing-failed" {
			t.Errorf("error record %v", e)
		}
		raw, _ := base64.StdEncoding.DecodeString(e["rawData"].(string))
		msg := strings.ReplaceAll(e["errorMessage"].(string), in+"/", "")
		msgs = append(msgs, fmt.Sprintf("%s [%d bytes]", msg, len(raw)))
	}
	sort.Strings(msgs)
	want := []string{
		fmt.Sprintf("b.ndjson.gz: lines %d-end: unexpected EOF", gotB+1),
		"c.ndjson.gz: lines 1-end: gzip: invalid header [0 bytes]",
		"d.ndjson: whole file: is a directory, not a file [0 bytes]",
		"e.ndjson: whole file: stat: no such file or directory [0 bytes]",
		"f.ndjson: whole file: stat: too many levels of symbolic links [0 bytes]",
		"g.ndjson: line 2: line longer than max_line_bytes (64 bytes): only its first 64 bytes are kept [64 bytes]",
	}
	if len(msgs) != len(want) || !strings.HasPrefix(msgs[0], want[0]) || strings.Join(msgs[1:], "\n") != strings.Join(want[1:], "\n") {
		t.Errorf("error records:\n%s\nwant\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
	if sum.ErrorsByType["processing-failed"] != 6 || sum.Sources[0].DecodeFailed != 6 {
		t.Errorf("errors by type %v, bad %d; want 6 processing-failed", sum.ErrorsByType, sum.Sources[0].DecodeFailed)
	}

	// A re-run recognises every record, the error records included, as
	// durable: nothing new is written.
	before := testutil.TreeHashes(dir)
	sum = runYAML(t, y)
	if i, o := sum.Balance(); i != o {
		t.Fatalf("re-run balance %d != %d", i, o)
	}
	if sk := sum.skipped(); sk != int64(2+gotB+2+6) {
		t.Errorf("re-run skipped %d records, want %d", sk, 2+gotB+2+6)
	}
	if after := testutil.TreeHashes(dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("re-run changed the output: %d objects before, %d after", len(before), len(after))
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func readNDJSON(t *testing.T, root string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for rel := range testutil.TreeHashes(root) {
		b, err := os.ReadFile(filepath.Join(root, rel))
		mustDo(t, err)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var m map[string]any
			mustDo(t, json.Unmarshal([]byte(l), &m))
			out = append(out, m)
		}
	}
	return out
}
