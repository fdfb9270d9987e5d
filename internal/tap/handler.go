package tap

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// DefaultReport is how often a stream says how many lines it dropped, when
// that number changed.
const DefaultReport = time.Second

// Handler serves GET /tap?route=NAME or /tap?sink=NAME, optionally with
// &limit=N: a 200 response of NDJSON lines (see the package doc) that lasts
// until N record lines were sent, the client goes away, or the request's
// context ends (the server shuts down). A nil Hub means the tap is off: 403
// with a message saying how to turn it on. An unknown route or sink is 404,
// a bad query 400, each with a one-line message.
type Handler struct {
	Hub *Hub
	// Buffer is each subscriber's line buffer; DefaultBuffer when 0.
	Buffer int
	// Report is how often a changed drop count is sent; DefaultReport
	// when 0. It is also sent before a stream ends at its limit.
	Report time.Duration
}

func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.Hub == nil {
		http.Error(w, "tap is off: set service.tap: true in the configuration to serve /tap", http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "tap: use GET", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	f := Filter{Route: q.Get("route"), Sink: q.Get("sink")}
	var limit int64
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			http.Error(w, fmt.Sprintf("tap: limit %q: want a positive integer", v), http.StatusBadRequest)
			return
		}
		limit = n
	}
	sub, err := h.Hub.Subscribe(f, h.Buffer)
	switch {
	case errors.Is(err, ErrUnknown):
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	// The client learns at once that it is subscribed.
	if rc.Flush() != nil {
		return
	}
	every := h.Report
	if every <= 0 {
		every = DefaultReport
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var sent, reported int64
	report := func() error {
		d := sub.Dropped()
		if d == reported {
			return nil
		}
		reported = d
		_, err := fmt.Fprintf(w, "{\"dropped\":%d}\n", d)
		return err
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if report() != nil || rc.Flush() != nil {
				return
			}
		case line := <-sub.Lines():
			// Write what is waiting, then flush once.
			for {
				if _, err := w.Write(line); err != nil {
					return
				}
				sent++
				if limit > 0 && sent == limit {
					_ = report()
					_ = rc.Flush()
					return
				}
				select {
				case line = <-sub.Lines():
					continue
				default:
				}
				break
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}
