package pipeline

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sluice-data/sluice/internal/config"
)

// Changes is what a new configuration changes against the running one,
// by component name.
type Changes struct {
	Sources, Routes, Sinks Delta
	// Restart lists service settings that changed but take effect only at
	// the next start (the HTTP listener, the log level, ...).
	Restart []string
	// Paused is how long a reload held new batches back: the flush of
	// every sink and the swap (set by Reload, not by Diff).
	Paused time.Duration
}

// Delta lists the components of one kind that a reload adds, removes or
// changes (same name, other settings).
type Delta struct {
	Added, Removed, Changed []string
}

func (d Delta) empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

func (d Delta) String() string {
	var parts []string
	for _, x := range []struct {
		verb  string
		names []string
	}{{"+", d.Added}, {"-", d.Removed}, {"~", d.Changed}} {
		for _, n := range x.names {
			parts = append(parts, x.verb+n)
		}
	}
	if len(parts) == 0 {
		return "unchanged"
	}
	return strings.Join(parts, " ")
}

// Empty reports whether the new configuration changes nothing that runs.
func (c Changes) Empty() bool {
	return c.Sources.empty() && c.Routes.empty() && c.Sinks.empty()
}

// String is the one-line account a reload logs: "sources: ~orders; routes:
// +high -all; sinks: +index", "+" added, "-" removed, "~" changed.
func (c Changes) String() string {
	s := fmt.Sprintf("sources: %s; routes: %s; sinks: %s", c.Sources, c.Routes, c.Sinks)
	if len(c.Restart) > 0 {
		s += "; at next start: " + strings.Join(c.Restart, ", ")
	}
	return s
}

// Diff compares two configurations component by component. A sink counts
// as changed when its own settings change, when the error sink it hands
// failures to changes (service.error_sink included), or when that error
// sink is itself replaced. A route counts as changed when anything that
// decides where its records go changes: its own settings, or the error
// output it falls back to.
func Diff(old, cur *config.Config) Changes {
	var c Changes
	c.Sources = delta(old.Sources, cur.Sources, func(s config.Source) string { return s.Name },
		func(a, b config.Source) bool { return config.Same(a, b) })
	c.Sinks = delta(old.Sinks, cur.Sinks, func(s config.Sink) string { return s.Name },
		func(a, b config.Sink) bool { return config.Same(a, b) })
	// A sink whose error sink is another one now, or is replaced, is
	// replaced too (it holds the error sink it was opened with).
	errSinkOf := func(cfg *config.Config, s config.Sink) string {
		if s.Type != "opensearch" {
			return ""
		}
		return cmp.Or(s.ErrorSink, cfg.Service.ErrorSink)
	}
	for changed := true; changed; {
		changed = false
		for _, s := range cur.Sinks {
			if slices.Contains(c.Sinks.Added, s.Name) || slices.Contains(c.Sinks.Changed, s.Name) {
				continue
			}
			i := slices.IndexFunc(old.Sinks, func(o config.Sink) bool { return o.Name == s.Name })
			es := errSinkOf(cur, s)
			if es != errSinkOf(old, old.Sinks[i]) || (es != "" && (slices.Contains(c.Sinks.Changed, es) || slices.Contains(c.Sinks.Added, es))) {
				c.Sinks.Changed = append(c.Sinks.Changed, s.Name)
				changed = true
			}
		}
	}
	routeSame := func(a, b config.Route) bool {
		return config.Same(a, b) && old.Service.ErrorSink == cur.Service.ErrorSink && sourceErrorSinks(old, a) == sourceErrorSinks(cur, b)
	}
	c.Routes = delta(old.Routes, cur.Routes, func(r config.Route) string { return r.Name }, routeSame)
	for _, x := range []struct {
		key  string
		a, b any
	}{
		{"service.http_listen", old.Service.HTTPListen, cur.Service.HTTPListen},
		{"service.log_level", old.Service.LogLevel, cur.Service.LogLevel},
		{"service.name", old.Service.Name, cur.Service.Name},
		{"service.workers", old.Service.Workers, cur.Service.Workers},
		{"service.cloudwatch_emf", old.Service.CloudWatchEMF, cur.Service.CloudWatchEMF},
		{"service.tap", old.Service.Tap, cur.Service.Tap},
	} {
		if !config.Same(x.a, x.b) {
			c.Restart = append(c.Restart, x.key)
		}
	}
	return c
}

// sourceErrorSinks is the error sinks of the sources a route reads, which
// its failures fall back to.
func sourceErrorSinks(cfg *config.Config, r config.Route) string {
	var out []string
	for _, from := range r.From {
		for _, s := range cfg.Sources {
			if s.Name == from {
				out = append(out, s.ErrorSink)
			}
		}
	}
	return strings.Join(out, ",")
}

func delta[T any](old, cur []T, name func(T) string, same func(a, b T) bool) Delta {
	var d Delta
	for _, o := range old {
		if !slices.ContainsFunc(cur, func(c T) bool { return name(c) == name(o) }) {
			d.Removed = append(d.Removed, name(o))
		}
	}
	for _, c := range cur {
		i := slices.IndexFunc(old, func(o T) bool { return name(o) == name(c) })
		switch {
		case i < 0:
			d.Added = append(d.Added, name(c))
		case !same(old[i], c):
			d.Changed = append(d.Changed, name(c))
		}
	}
	return d
}
