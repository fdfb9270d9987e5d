package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/sluice-data/sluice/internal/config"
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
