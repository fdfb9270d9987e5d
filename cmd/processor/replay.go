package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/pipeline"
)

// replayConfig trims cfg to one source, the routes from it (all, or those
// named) and the sinks they use, with their error outputs.
func replayConfig(cfg *config.Config, source string, routes []string) error {
	i := slices.IndexFunc(cfg.Sources, func(s config.Source) bool { return s.Name == source })
	if i < 0 {
		var names []string
		for _, s := range cfg.Sources {
			names = append(names, s.Name)
		}
		return fmt.Errorf("replay: no source %q in %s (sources: %s)", source, cfg.File, strings.Join(names, ", "))
	}
	src := cfg.Sources[i]
	if !slices.Contains(replaySources, src.Type) {
		return fmt.Errorf("replay: source %q is type %s; replay reads %s sources", source, src.Type, strings.Join(replaySources, ", "))
	}
	cfg.Sources = []config.Source{src}
	var kept []config.Route
	for _, r := range cfg.Routes {
		if !slices.Contains(r.From, source) || len(routes) > 0 && !slices.Contains(routes, r.Name) {
			continue
		}
		r.From = []string{source}
		kept = append(kept, r)
	}
	for _, name := range routes {
		if !slices.ContainsFunc(kept, func(r config.Route) bool { return r.Name == name }) {
			return fmt.Errorf("replay: no route %q from source %q", name, source)
		}
	}
	if len(kept) == 0 {
		return fmt.Errorf("replay: no route reads from source %q", source)
	}
	cfg.Routes = kept
	used := map[string]bool{cfg.Service.ErrorSink: true, src.ErrorSink: true}
	for _, r := range kept {
		used[r.ErrorSink] = true
		for _, to := range r.To {
			used[to] = true
		}
	}
	for _, s := range cfg.Sinks {
		if used[s.Name] && s.ErrorSink != "" {
			used[s.ErrorSink] = true
		}
	}
	cfg.Sinks = slices.DeleteFunc(cfg.Sinks, func(s config.Sink) bool { return !used[s.Name] })
	return nil
}

// progress reports a replay on w: a redrawn line when w is a terminal,
// a line every 10 s otherwise.
func progress(ctx context.Context, p *pipeline.Pipeline, w *os.File) {
	st, err := w.Stat()
	tty := err == nil && st.Mode()&os.ModeCharDevice != 0
	every := 10 * time.Second
	if tty {
		every = 500 * time.Millisecond
	}
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(w)
			}
			return
		case <-t.C:
			line := progressLine(p, time.Since(start))
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", line)
			} else {
				io.WriteString(w, line+"\n")
			}
		}
	}
}

func progressLine(p *pipeline.Pipeline, elapsed time.Duration) string {
	read, parts := p.ReplayProgress()
	rate := float64(read) / elapsed.Seconds()
	var done, total int64
	var pcts []string
	for _, pp := range parts {
		done += pp.Done
		total += pp.Total
		pct := 100.0
		if pp.Total > 0 {
			pct = 100 * float64(pp.Done) / float64(pp.Total)
		}
		pcts = append(pcts, fmt.Sprintf("%s %.0f%%", pp.Partition, pct))
	}
	eta := "?"
	if rate > 0 && total > done {
		eta = (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second).String()
	} else if total > 0 && done >= total {
		eta = "0s"
	}
	if len(pcts) > 8 {
		pcts = append(pcts[:8], fmt.Sprintf("… %d more", len(pcts)-8))
	}
	return fmt.Sprintf("replay: %d records, %.0f/s, ETA %s | %s", read, rate, eta, strings.Join(pcts, ", "))
}
