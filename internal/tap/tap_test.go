package tap

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/record"
)

func rec(t testing.TB, n int) *record.Record {
	t.Helper()
	v, err := fastjson.Parse(`{"n":` + strconv.Itoa(n) + `,"msg":"<a & b>"}`)
	if err != nil {
		t.Fatal(err)
	}
	return &record.Record{Source: "app", Value: v, Pos: record.Position{Partition: "app/0", Offset: int64(n)}}
}

func TestLineFormat(t *testing.T) {
	h := NewHub([]string{"r"}, []string{"lake", "search"})
	sub, err := h.Subscribe(Filter{Route: "r"}, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	h.Publish("r", []string{"lake", "search"}, rec(t, 7))
	h.Publish("r", []string{"lake"}, &record.Record{Source: "raw", Raw: []byte("plain \"text\"\xff"), Pos: record.Position{Partition: "f.log", Offset: 3, Sub: "/1"}})
	tests := []string{
		`{"route":"r","sinks":["lake","search"],"source":"app","position":"app/0:7","record":{"n":7,"msg":"<a & b>"}}` + "\n",
		`{"route":"r","sinks":["lake"],"source":"raw","position":"f.log:3/1","record":"plain \"text\"\ufffd"}` + "\n",
	}
	for _, want := range tests {
		if got := string(<-sub.Lines()); got != want {
			t.Errorf("line\n got %s\nwant %s", got, want)
		}
	}
}

func TestFilter(t *testing.T) {
	h := NewHub([]string{"a", "b"}, []string{"x", "y"})
	tests := []struct {
		give Filter
		want []int // records (by n) the subscriber sees
	}{
		{give: Filter{Route: "a"}, want: []int{1, 3}},
		{give: Filter{Route: "b"}, want: []int{2}},
		{give: Filter{Sink: "x"}, want: []int{1, 2}},
		{give: Filter{Sink: "y"}, want: []int{2, 3}},
	}
	subs := make([]*Subscription, len(tests))
	for i, tt := range tests {
		s, err := h.Subscribe(tt.give, 8)
		if err != nil {
			t.Fatal(err)
		}
		subs[i] = s
	}
	h.Publish("a", []string{"x"}, rec(t, 1))
	h.Publish("b", []string{"x", "y"}, rec(t, 2))
	h.Publish("a", []string{"y"}, rec(t, 3))
	for i, tt := range tests {
		subs[i].Close()
		var got []int
		for l := range subs[i].Lines() {
			var v struct{ Record struct{ N int } }
			if err := json.Unmarshal(l, &v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v.Record.N)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%+v saw %v, want %v", tt.give, got, tt.want)
		}
	}
	if h.Active() {
		t.Error("hub active after every subscriber closed")
	}
}

func TestSubscribeValidates(t *testing.T) {
	h := NewHub([]string{"r"}, []string{"lake"})
	tests := []struct {
		give    Filter
		unknown bool
		msg     string
	}{
		{give: Filter{Route: "nope"}, unknown: true, msg: `tap: route "nope": unknown name (routes: [r])`},
		{give: Filter{Sink: "nope"}, unknown: true, msg: `tap: sink "nope": unknown name (sinks: [lake])`},
		{give: Filter{}, msg: "tap: give exactly one of route and sink"},
		{give: Filter{Route: "r", Sink: "lake"}, msg: "tap: give exactly one of route and sink"},
	}
	for _, tt := range tests {
		_, err := h.Subscribe(tt.give, 1)
		if err == nil || err.Error() != tt.msg || errors.Is(err, ErrUnknown) != tt.unknown {
			t.Errorf("Subscribe(%+v) = %v, want %q (unknown %v)", tt.give, err, tt.msg, tt.unknown)
		}
	}
	if h.Active() {
		t.Error("a refused subscription made the hub active")
	}
}

// TestSlowSubscriberDrops: a subscriber that never reads fills its buffer;
// further records are dropped and counted for it alone, and Publish returns
// every time (a blocking send would hang this test).
func TestSlowSubscriberDrops(t *testing.T) {
	h := NewHub([]string{"r"}, []string{"lake"})
	slow, _ := h.Subscribe(Filter{Route: "r"}, 3)
	defer slow.Close()
	fast, _ := h.Subscribe(Filter{Sink: "lake"}, 100)
	defer fast.Close()
	for n := range 10 {
		h.Publish("r", []string{"lake"}, rec(t, n))
	}
	if got := slow.Dropped(); got != 7 {
		t.Errorf("slow subscriber dropped %d, want 7", got)
	}
	if got := fast.Dropped(); got != 0 {
		t.Errorf("fast subscriber dropped %d, want 0", got)
	}
	if got := len(fast.Lines()); got != 10 {
		t.Errorf("fast subscriber has %d lines, want 10", got)
	}
	// The slow one keeps the first three.
	for n := range 3 {
		var v struct{ Record struct{ N int } }
		json.Unmarshal(<-slow.Lines(), &v)
		if v.Record.N != n {
			t.Errorf("slow line %d is record %d", n, v.Record.N)
		}
	}
}

func TestNilHub(t *testing.T) {
	var h *Hub
	if h.Active() {
		t.Error("nil hub active")
	}
	h.Publish("r", nil, rec(t, 1)) // must not panic
}

// TestPublishNoSubscribersAllocatesNothing is the fast path's contract.
func TestPublishNoSubscribersAllocatesNothing(t *testing.T) {
	h := NewHub([]string{"r"}, []string{"lake"})
	s, _ := h.Subscribe(Filter{Route: "r"}, 1)
	s.Close()
	r := rec(t, 1)
	sinks := []string{"lake"}
	if n := testing.AllocsPerRun(1000, func() { h.Publish("r", sinks, r) }); n != 0 {
		t.Errorf("Publish with no subscribers allocates %v times", n)
	}
}

func BenchmarkPublishNoSubscribers(b *testing.B) {
	h := NewHub([]string{"r"}, []string{"lake"})
	r := rec(b, 1)
	sinks := []string{"lake"}
	b.ReportAllocs()
	for b.Loop() {
		h.Publish("r", sinks, r)
	}
}

func BenchmarkPublishOneSubscriber(b *testing.B) {
	h := NewHub([]string{"r"}, []string{"lake"})
	s, _ := h.Subscribe(Filter{Route: "r"}, 1)
	defer s.Close()
	r := rec(b, 1)
	sinks := []string{"lake"}
	b.ReportAllocs()
	for b.Loop() {
		h.Publish("r", sinks, r) // the buffer stays full: render, then drop
	}
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHandlerRefuses(t *testing.T) {
	on := httptest.NewServer(Handler{Hub: NewHub([]string{"r"}, []string{"lake"})})
	defer on.Close()
	off := httptest.NewServer(Handler{})
	defer off.Close()
	tests := []struct {
		name, url string
		code      int
		body      string
	}{
		{"tap off", off.URL + "/tap?route=r", 403, "tap is off: set service.tap: true in the configuration to serve /tap\n"},
		{"unknown route", on.URL + "/tap?route=nope", 404, "tap: route \"nope\": unknown name (routes: [r])\n"},
		{"unknown sink", on.URL + "/tap?sink=nope", 404, "tap: sink \"nope\": unknown name (sinks: [lake])\n"},
		{"neither", on.URL + "/tap", 400, "tap: give exactly one of route and sink\n"},
		{"both", on.URL + "/tap?route=r&sink=lake", 400, "tap: give exactly one of route and sink\n"},
		{"bad limit", on.URL + "/tap?route=r&limit=0", 400, "tap: limit \"0\": want a positive integer\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := getBody(t, tt.url)
			if code != tt.code || body != tt.body {
				t.Errorf("GET = %d %q, want %d %q", code, body, tt.code, tt.body)
			}
		})
	}
}

// TestHandlerStreamsToLimit: records published after the response started
// arrive as lines, and the stream ends after limit of them.
func TestHandlerStreamsToLimit(t *testing.T) {
	h := NewHub([]string{"r", "other"}, []string{"lake"})
	srv := httptest.NewServer(Handler{Hub: h})
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/tap?route=r&limit=3")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Headers arrive once the handler has subscribed.
	for n := range 5 {
		h.Publish("other", []string{"lake"}, rec(t, 100+n))
		h.Publish("r", []string{"lake"}, rec(t, n))
	}
	var got []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		got = append(got, sc.Text())
	}
	want := []string{
		`{"route":"r","sinks":["lake"],"source":"app","position":"app/0:0","record":{"n":0,"msg":"<a & b>"}}`,
		`{"route":"r","sinks":["lake"],"source":"app","position":"app/0:1","record":{"n":1,"msg":"<a & b>"}}`,
		`{"route":"r","sinks":["lake"],"source":"app","position":"app/0:2","record":{"n":2,"msg":"<a & b>"}}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stream:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// blockingWriter tells when the handler has subscribed (its first
// Flush) and holds the handler in its first Write until released, so the
// test can overflow the subscriber's buffer without timing.
type blockingWriter struct {
	*httptest.ResponseRecorder
	flushes, writes int
	subscribed      chan struct{}
	started         chan struct{}
	release         chan struct{}
}

func (w *blockingWriter) Flush() {
	w.flushes++ // only the handler's goroutine calls Flush and Write
	if w.flushes == 1 {
		close(w.subscribed)
	}
	w.ResponseRecorder.Flush()
}

func (w *blockingWriter) Write(b []byte) (int, error) {
	w.writes++
	if w.writes == 1 {
		close(w.started)
		<-w.release
	}
	return w.ResponseRecorder.Write(b)
}

// TestHandlerReportsDrops: while the client is stuck on one line, lines
// beyond the buffer are dropped, and the stream says how many before it
// ends at its limit.
func TestHandlerReportsDrops(t *testing.T) {
	h := NewHub([]string{"r"}, []string{"lake"})
	w := &blockingWriter{ResponseRecorder: httptest.NewRecorder(),
		subscribed: make(chan struct{}), started: make(chan struct{}), release: make(chan struct{})}
	req := httptest.NewRequest(http.MethodGet, "/tap?route=r&limit=3", nil)
	done := make(chan struct{})
	go func() {
		Handler{Hub: h, Buffer: 2, Report: time.Hour}.ServeHTTP(w, req)
		close(done)
	}()
	<-w.subscribed
	h.Publish("r", []string{"lake"}, rec(t, 0))
	<-w.started // the handler holds line 0 and is stuck writing it
	for n := 1; n <= 7; n++ {
		h.Publish("r", []string{"lake"}, rec(t, n)) // 1 and 2 fit, 3 to 7 are dropped
	}
	close(w.release)
	<-done
	var ns []string
	for _, l := range strings.Split(strings.TrimSuffix(w.Body.String(), "\n"), "\n") {
		var v struct {
			Record  struct{ N int }
			Dropped *int
		}
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if v.Dropped != nil {
			ns = append(ns, "dropped "+strconv.Itoa(*v.Dropped))
			continue
		}
		ns = append(ns, strconv.Itoa(v.Record.N))
	}
	if got, want := strings.Join(ns, ","), "0,1,2,dropped 5"; got != want {
		t.Errorf("stream %s, want %s", got, want)
	}
	if h.Active() {
		t.Error("handler left its subscription behind")
	}
}

// TestSetNames: after a reload renames routes, a tap may name the new
// route and no longer the old one.
func TestSetNames(t *testing.T) {
	h := NewHub([]string{"old"}, []string{"lake"})
	if _, err := h.Subscribe(Filter{Route: "new"}, 1); !errors.Is(err, ErrUnknown) {
		t.Fatalf("route new before the reload: %v", err)
	}
	h.SetNames([]string{"new"}, []string{"lake"})
	s, err := h.Subscribe(Filter{Route: "new"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := h.Subscribe(Filter{Route: "old"}, 1); !errors.Is(err, ErrUnknown) {
		t.Fatalf("route old after the reload: %v", err)
	}
}
