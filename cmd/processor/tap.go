package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/tap"
)

// newTapHub returns the hub behind GET /tap for cfg's routes and sinks.
func newTapHub(cfg *config.Config) *tap.Hub {
	var routes, sinks []string
	for _, r := range cfg.Routes {
		routes = append(routes, r.Name)
	}
	for _, s := range cfg.Sinks {
		sinks = append(sinks, s.Name)
	}
	return tap.NewHub(routes, sinks)
}

// defaultTapURL matches service.http_listen's default (":8080").
const defaultTapURL = "http://127.0.0.1:8080"

const tapUsage = `usage: processor tap (-c FILE | --url URL) (--route NAME | --sink NAME) [--limit N]

Print live records of one route (what it hands its sinks, after its transforms) or
of one sink (what every route hands it), as NDJSON, from a running service with
service.tap: true. Each line is
  {"route":R,"sinks":[...],"source":S,"position":P,"record":...}
record is the record as JSON, or for format raw its bytes as a string. A reader
slower than the pipeline never slows it: lines are dropped, and the count is
reported on stderr. Runs until --limit records or Ctrl-C.
`

// tapCmd streams GET /tap from a running service to stdout. The address
// comes from --url, else from -c's service.http_listen, else the default
// port.
func tapCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("tap", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := fs.String("url", "", "service `URL` (default "+defaultTapURL+", or the port of -c's service.http_listen)")
	file := fs.String("c", "", "configuration `FILE` whose service.http_listen names the port")
	route := fs.String("route", "", "route `NAME` to tap")
	sink := fs.String("sink", "", "sink `NAME` to tap")
	limit := fs.Int64("limit", 0, "stop after `N` records (default: until Ctrl-C)")
	if help, err := parseOwn(fs, args, tapUsage, stdout, stderr); help || err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return ownUsageError(stderr, fs, tapUsage, "tap: unexpected argument %q", fs.Arg(0))
	case (*route == "") == (*sink == ""):
		return ownUsageError(stderr, fs, tapUsage, "tap: give exactly one of --route NAME and --sink NAME")
	case *limit < 0:
		return ownUsageError(stderr, fs, tapUsage, "tap: --limit must be a positive number")
	}
	target := *base
	if target == "" {
		target = defaultTapURL
		if *file != "" {
			var err error
			if target, err = serviceURL(ctx, *file, "tap", "/tap"); err != nil {
				return err
			}
		}
	}
	q := url.Values{}
	if *route != "" {
		q.Set("route", *route)
	} else {
		q.Set("sink", *sink)
	}
	if *limit > 0 {
		q.Set("limit", strconv.FormatInt(*limit, 10))
	}
	target = strings.TrimSuffix(strings.TrimSuffix(target, "/"), "/tap") + "/tap?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("tap: %w", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C
		}
		return &exitError{code: 1, err: fmt.Errorf("tap: %w", err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<12))
		return &exitError{code: 1, err: fmt.Errorf("%s (GET %s: %s)", bytes.TrimSpace(msg), target, resp.Status)}
	}
	return copyTap(ctx, resp.Body, *limit, stdout, stderr)
}

// droppedPrefix starts the lines that count what the service dropped for
// this reader; record lines start with {"route":.
var droppedPrefix = []byte(`{"dropped":`)

// copyTap copies record lines to stdout until limit (0: no limit) and
// reports drop counts on stderr.
func copyTap(ctx context.Context, body io.Reader, limit int64, stdout, stderr io.Writer) error {
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	r := bufio.NewReaderSize(body, 64<<10)
	var n, dropped int64
	defer func() {
		if dropped > 0 {
			fmt.Fprintf(stderr, "tap: %d records dropped in all: this reader was slower than the pipeline (the pipeline was not slowed)\n", dropped)
		}
	}()
	for limit == 0 || n < limit {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && err == nil {
			if d, ok := droppedCount(line); ok {
				if d > dropped {
					dropped = d
					out.Flush()
					fmt.Fprintf(stderr, "tap: %d records dropped so far: this reader is slower than the pipeline\n", d)
				}
				continue
			}
			if _, werr := out.Write(line); werr != nil {
				return &exitError{code: 1, err: fmt.Errorf("tap: %w", werr)}
			}
			n++
			if r.Buffered() == 0 {
				out.Flush() // show lines as they come, not when the buffer fills
			}
			continue
		}
		if ctx.Err() != nil {
			return nil // Ctrl-C
		}
		if err == nil || errors.Is(err, io.EOF) {
			err = errors.New("the service ended the stream (stopping?)")
		}
		return &exitError{code: 1, err: fmt.Errorf("tap: after %d records: %w", n, err)}
	}
	// The service also ends the stream at the limit, after its last drop
	// count: read that count if it is there.
	if line, err := r.ReadBytes('\n'); err == nil {
		if d, ok := droppedCount(line); ok && d > dropped {
			dropped = d
		}
	}
	return nil
}

// droppedCount reads a {"dropped":N} line.
func droppedCount(line []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(line, droppedPrefix)
	if !ok {
		return 0, false
	}
	d, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte("}"))), 10, 64)
	return d, err == nil
}
