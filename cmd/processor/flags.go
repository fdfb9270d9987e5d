package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
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

// parseOwn parses the flags of a command that keeps its own flag set:
// -h/--help prints usage and the flags on stdout and reports help (exit
// 0); a bad flag is a usage error (exit 2).
func parseOwn(fs *flag.FlagSet, args []string, usage string, stdout, stderr io.Writer) (help bool, err error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fmt.Fprintln(stdout, "\nflags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return true, nil
		}
		return false, ownUsageError(stderr, fs, usage, "%s: %v", fs.Name(), err)
	}
	return false, nil
}

// ownUsageError reports a mistake on a command that parses its own flags:
// the message, then that command's usage and flags (not every command's),
// on stderr; exit 2.
func ownUsageError(stderr io.Writer, fs *flag.FlagSet, usage, format string, args ...any) error {
	fmt.Fprintf(stderr, format+"\n\n", args...)
	fmt.Fprint(stderr, usage)
	fmt.Fprintln(stderr, "\nflags:")
	fs.SetOutput(stderr)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return &exitError{code: 2, err: errors.New("")}
}
