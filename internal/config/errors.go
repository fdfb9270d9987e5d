package config

import (
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a configuration file, with the line and the key
// path it concerns. A Warning does not stop the configuration from running.
type Error struct {
	File    string
	Line    int
	Path    string // e.g. sinks[1].partition_keys.year
	Msg     string
	Warning bool
}

// Error renders the problem as "file:line: key.path: message", prefixed
// with "warning: " for a warning. It never contains a value that came from
// the environment: the reference (${NAME}) is printed instead.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Sort orders the problems by line, keeping the order of those on one line.
func (es Errors) Sort() {
	slices.SortStableFunc(es, func(a, b *Error) int { return a.Line - b.Line })
}

// Warning returns a warning about the value at path, worded as Validate's
// are: with its line, and with ${NAME} in place of any value that came
// from the environment. For checks Validate cannot make itself, such as
// processor validate's look for files where the service will run.
func (c *Config) Warning(path, format string, args ...any) *Error {
	return &Error{File: c.File, Line: c.Line(path), Path: path, Warning: true, Msg: c.red.redact(path, fmt.Sprintf(format, args...))}
}
