package main

import (
	"fmt"
	"strings"
)

// listFlag collects comma-separated values from a repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s == "" {
			return fmt.Errorf("empty name in %q", v)
		}
		*l = append(*l, s)
	}
	return nil
}

// enumFlag collects KEY=V1,V2,... from a repeated flag.
type enumFlag map[string][]string

func (e enumFlag) String() string {
	var parts []string
	for k, v := range e {
		parts = append(parts, k+"="+strings.Join(v, ","))
	}
	return strings.Join(parts, " ")
}

func (e enumFlag) Set(v string) error {
	k, vals, ok := strings.Cut(v, "=")
	if !ok || k == "" || vals == "" {
		return fmt.Errorf("want KEY=V1,V2,..., not %q", v)
	}
	if _, dup := e[k]; dup {
		return fmt.Errorf("key %s given twice", k)
	}
	for _, s := range strings.Split(vals, ",") {
		if s == "" {
			return fmt.Errorf("empty value in %q", v)
		}
		e[k] = append(e[k], s)
	}
	return nil
}
