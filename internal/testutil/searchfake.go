package testutil

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"time"
)

// SearchFake is a strict stand-in for OpenSearch's _bulk API, for tests of
// the OpenSearch sink through the real client. It parses and validates
// every action/document pair as OpenSearch would (a malformed body is a
// 400 for the whole request), answers per item with what Item returns,
// can refuse whole requests, be slow or drop connections, and records what
// it indexed.
type SearchFake struct {
	Server *httptest.Server

	mu sync.Mutex
	// Item decides an item's status; nil answers 201 (200 if the id
	// exists). attempt counts this id's deliveries, from 1.
	Item func(index, id string, doc []byte, attempt int) int
	// Request may answer a whole request instead (status != 0) or drop
	// its connection (drop); n counts bulk requests, from 1.
	Request func(r *http.Request, body []byte, n int) (status int, drop bool)
	// MaxBody answers 413 to larger requests, like http.max_content_length.
	MaxBody int
	// Delay slows every bulk request.
	Delay time.Duration

	docs     map[string]map[string][]byte // index -> id -> document
	attempts map[string]int               // index/id -> deliveries
	requests int
	puts     map[string][]byte // path -> body of PUTs (templates, pipelines)
	params   []string          // query strings of bulk requests
}

// NewSearchFake starts a fake; it stops when the test ends.
func NewSearchFake(t interface{ Cleanup(func()) }) *SearchFake {
	f := &SearchFake{docs: map[string]map[string][]byte{}, attempts: map[string]int{}, puts: map[string][]byte{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	return f
}

var indexName = regexp.MustCompile(`^[a-z0-9][a-z0-9._+-]*$`)

func (f *SearchFake) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodPut && (strings.HasPrefix(r.URL.Path, "/_index_template/") || strings.HasPrefix(r.URL.Path, "/_ingest/pipeline/")) {
		if !json.Valid(body) {
			writeJSON(w, 400, map[string]any{"error": map[string]any{"type": "parse_exception", "reason": "invalid JSON"}, "status": 400})
			return
		}
		f.mu.Lock()
		f.puts[r.URL.Path] = body
		f.mu.Unlock()
		writeJSON(w, 200, map[string]any{"acknowledged": true})
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/_bulk" {
		writeJSON(w, 404, map[string]any{"error": "no handler for " + r.Method + " " + r.URL.Path})
		return
	}
	f.mu.Lock()
	f.requests++
	n := f.requests
	f.params = append(f.params, r.URL.RawQuery)
	hook, delay, maxBody := f.Request, f.Delay, f.MaxBody
	f.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if hook != nil {
		if status, drop := hook(r, body, n); drop {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		} else if status != 0 {
			writeJSON(w, status, map[string]any{"error": map[string]any{"type": "injected", "reason": http.StatusText(status)}, "status": status})
			return
		}
	}
	if maxBody > 0 && len(body) > maxBody {
		writeJSON(w, 413, map[string]any{"error": map[string]any{"type": "content_too_long", "reason": "request body too large"}, "status": 413})
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") && !strings.HasPrefix(ct, "application/json") {
		f.badRequest(w, "Content-Type header ["+ct+"] is not supported")
		return
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		f.badRequest(w, "The bulk request must be terminated by a newline [\\n]")
		return
	}
	type pair struct {
		op, index, id string
		doc           []byte
	}
	var pairs []pair
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var action map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || len(action) != 1 {
			f.badRequest(w, fmt.Sprintf("malformed action/metadata line [%d]", 2*len(pairs)+1))
			return
		}
		var p pair
		for op, meta := range action {
			p.op, p.index, p.id = op, meta.Index, meta.ID
		}
		if p.op != "index" && p.op != "create" {
			f.badRequest(w, "action "+p.op+" is not supported by this fake")
			return
		}
		if !indexName.MatchString(p.index) || p.id == "" || len(p.id) > 512 {
			f.badRequest(w, fmt.Sprintf("invalid _index %q or _id %q", p.index, p.id))
			return
		}
		if !sc.Scan() {
			f.badRequest(w, "action line without a document")
			return
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			f.badRequest(w, fmt.Sprintf("document for %s is not a JSON object: %v", p.id, err))
			return
		}
		p.doc = append([]byte(nil), sc.Bytes()...)
		pairs = append(pairs, p)
	}
	var items []map[string]any
	errors := false
	f.mu.Lock()
	for _, p := range pairs {
		key := p.index + "/" + p.id
		f.attempts[key]++
		_, exists := f.docs[p.index][p.id]
		status := 201
		if exists {
			status = 200
		}
		if f.Item != nil {
			if s := f.Item(p.index, p.id, p.doc, f.attempts[key]); s != 0 {
				status = s
			}
		}
		if p.op == "create" && exists && status < 300 {
			status = 409
		}
		res := map[string]any{"_index": p.index, "_id": p.id, "status": status}
		switch {
		case status < 300:
			if f.docs[p.index] == nil {
				f.docs[p.index] = map[string][]byte{}
			}
			f.docs[p.index][p.id] = p.doc
			res["result"] = map[bool]string{true: "updated", false: "created"}[exists]
		case status == 400:
			errors = true
			res["error"] = map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse field [value] of type [long] in document with id '" + p.id + "'",
				"caused_by": map[string]any{"type": "illegal_argument_exception", "reason": "For input string: \"abc\""}}
		case status == 409:
			errors = true
			res["error"] = map[string]any{"type": "version_conflict_engine_exception", "reason": "[" + p.id + "]: version conflict, document already exists"}
		case status == 429:
			errors = true
			res["error"] = map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}
		default:
			errors = true
			res["error"] = map[string]any{"type": "unavailable_shards_exception", "reason": http.StatusText(status)}
		}
		items = append(items, map[string]any{p.op: res})
	}
	f.mu.Unlock()
	writeJSON(w, 200, map[string]any{"took": 3, "errors": errors, "items": items})
}

func (f *SearchFake) badRequest(w http.ResponseWriter, reason string) {
	writeJSON(w, 400, map[string]any{"error": map[string]any{"type": "illegal_argument_exception", "reason": reason}, "status": 400})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Docs returns the number of documents indexed, over all indices.
func (f *SearchFake) Docs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.docs {
		n += len(m)
	}
	return n
}

// Doc returns an indexed document, or nil.
func (f *SearchFake) Doc(index, id string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.docs[index][id]
}

// Indices lists the indices with their document counts.
func (f *SearchFake) Indices() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, m := range f.docs {
		out[k] = len(m)
	}
	return out
}

// Attempts returns how many times index/id was delivered.
func (f *SearchFake) Attempts(index, id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attempts[index+"/"+id]
}

// AllAttempts returns the deliveries of every index/id.
func (f *SearchFake) AllAttempts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int, len(f.attempts))
	for k, v := range f.attempts {
		out[k] = v
	}
	return out
}

// Requests returns the number of bulk requests received.
func (f *SearchFake) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// Put returns the body of a PUT to path, or nil.
func (f *SearchFake) Put(path string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts[path]
}

// Params returns the query strings of the bulk requests.
func (f *SearchFake) Params() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.params...)
}

// Set changes the fake's behaviour under its lock.
func (f *SearchFake) Set(change func(f *SearchFake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}
