// Command processor is the Sluice stream processor.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // IANA zones for epoch_to_utc in minimal containers

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/athena"
	"github.com/sluice-data/sluice/internal/buildinfo"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/pipeline"
	"github.com/sluice-data/sluice/internal/service"
	filesource "github.com/sluice-data/sluice/internal/sources/file"
)

// replaySources are the source types replay can read a time range of; the
// usage text and replay's error both come from here.
var replaySources = []string{"kafka", "kinesis", "archive"}

var usage = `usage: processor <command> [flags]

commands:
  run -c FILE        run the pipeline the configuration describes
  validate -c FILE   check a configuration; prints OK or every error
  test -c FILE [TEST_FILE...]
                     run config unit tests in memory (default: every *.test.yaml beside FILE)
  replay -c FILE --source NAME --from T1 --to T2 [--routes a,b]
                     run a time range of a ` + strings.Join(replaySources, ", ") + ` source again
                     through today's routes (no group joined, nothing committed)
  athena-ddl -c FILE --sink NAME [--database DB] [--years 2020-NOW+1]
             [--enum KEY=V1,V2] [--injected KEY,...]
                     print the Athena table (with partition projection) for a Parquet sink
  iam-policy -c FILE [--account ID] [--region R]
                     print the task role's least-privilege IAM policy for FILE
  healthcheck [--url URL | -c FILE]
                     exit 0 when /healthz answers 200 (container health check)
  tap -c FILE (--route NAME | --sink NAME) [--limit N] [--url URL]
                     print live records of a running service as NDJSON (service.tap: true)
  version            print the version (also: processor --version)

-c takes a path, s3://bucket/key or ssm:/parameter/name.
'processor <command> -h' shows a command's flags.
`

// command is one subcommand: its synopsis, what it does, and its flags.
type command struct {
	args, about string
	flags       func(fs *flag.FlagSet, o *cmdOptions)
}

// cmdOptions holds every subcommand's flag values.
type cmdOptions struct {
	file, sink, database, years, source, from, to, routes string
	enums                                                 enumFlag
	injected                                              listFlag
}

var commands = map[string]command{
	"run":      {"-c FILE", "Run the pipeline the configuration describes until its sources end or a signal arrives.", nil},
	"validate": {"-c FILE", "Check a configuration; prints OK, or every error with its file, line and key.", nil},
	"replay": {"-c FILE --source NAME --from T1 --to T2 [--routes a,b]",
		"Run a time range of one source again through today's routes: no consumer group is joined, nothing is\n" +
			"committed. The source must be of type " + strings.Join(replaySources, ", ") + ".",
		func(fs *flag.FlagSet, o *cmdOptions) {
			fs.StringVar(&o.source, "source", "", "source `NAME` to replay (required)")
			fs.StringVar(&o.from, "from", "", "RFC 3339 `time` to start at, inclusive (required)")
			fs.StringVar(&o.to, "to", "", "RFC 3339 `time` to stop at, exclusive (required)")
			fs.StringVar(&o.routes, "routes", "", "comma-separated route `names` (default: every route from the source)")
		}},
	"athena-ddl": {"-c FILE --sink NAME [flags]",
		"Print the Athena CREATE EXTERNAL TABLE, with partition projection, for a Parquet sink (type s3). A file:\n" +
			"sink gets a placeholder LOCATION (" + athena.PlaceholderBucket + "...) to replace with where its files are uploaded.\n" +
			"Keys from strftime project as int (%Y, %m, %d, %H) or date columns; any other key needs --enum or --injected\n" +
			"for projection, else the table is printed without projection (register partitions with glue or MSCK REPAIR TABLE).",
		func(fs *flag.FlagSet, o *cmdOptions) {
			fs.StringVar(&o.sink, "sink", "", "sink `NAME` (required)")
			fs.StringVar(&o.database, "database", "", "Athena `database` to qualify the table with")
			fs.StringVar(&o.years, "years", athena.DefaultYears, "`FIRST-LAST` years projected for year keys and the start of date keys;\neach a year or NOW, NOW+N, NOW-N, resolved when the DDL is printed\n(re-run before the last year ends); e.g. 2019-2030")
			fs.Var(o.enums, "enum", "project a key as the listed values, `KEY=V1,V2,...`, as records hold them (repeatable)")
			fs.Var(&o.injected, "injected", "partition `KEYS` whose values every query supplies and must filter on (repeatable)")
		}},
	"version": {"", "Print the version.", nil},
}

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	// Signals are caught from the first instruction, so a SIGTERM that
	// arrives while the configuration loads still means a clean stop. The
	// first signal starts the graceful shutdown; restoring the default
	// handling lets a second one end the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	context.AfterFunc(ctx, stop)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, ee.err)
		}
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "processor:", err)
		os.Exit(1)
	}
}

func usageError(stderr io.Writer, format string, args ...any) error {
	fmt.Fprintf(stderr, format+"\n\n", args...)
	fmt.Fprint(stderr, usage)
	return &exitError{code: 2, err: errors.New("")}
}

// newFlagSet builds cmd's flags; its usage goes to w.
func newFlagSet(name string, c command, o *cmdOptions, w io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	if name != "version" {
		fs.StringVar(&o.file, "c", "", "configuration `FILE` (required)")
	}
	if c.flags != nil {
		c.flags(fs, o)
	}
	fs.Usage = func() {
		fmt.Fprintf(w, "usage: processor %s %s\n\n%s\n", name, c.args, c.about)
		if name != "version" {
			fmt.Fprint(w, "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// ownFlags are the commands that parse their own flags (and answer -h
// with their own usage).
var ownFlags = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{
	"healthcheck": healthcheck,
	"iam-policy":  iamPolicy,
	"test":        configTest,
	"tap":         tapCmd,
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError(stderr, "no command given")
	}
	name, rest := args[0], args[1:]
	if sub, ok := ownFlags[name]; ok {
		return sub(ctx, rest, stdout, stderr)
	}
	switch name {
	case "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "help":
		if len(rest) == 0 {
			fmt.Fprint(stdout, usage)
			return nil
		}
		if sub, ok := ownFlags[rest[0]]; ok {
			return sub(ctx, []string{"-h"}, stdout, stderr)
		}
		c, ok := commands[rest[0]]
		if !ok {
			return usageError(stderr, "help: unknown command %q", rest[0])
		}
		newFlagSet(rest[0], c, &cmdOptions{enums: enumFlag{}}, stdout).Usage()
		return nil
	case "-version", "--version":
		name = "version"
	}
	c, ok := commands[name]
	if !ok {
		return usageError(stderr, "unknown command %q", name)
	}
	o := cmdOptions{enums: enumFlag{}}
	// Parse once silently: -h prints the command's usage on stdout and
	// succeeds; a bad flag prints the error and the usage on stderr.
	fs := newFlagSet(name, c, &o, io.Discard)
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			newFlagSet(name, c, &cmdOptions{enums: enumFlag{}}, stdout).Usage()
			return nil
		}
		fmt.Fprintf(stderr, "%s: %v\n\n", name, err)
		newFlagSet(name, c, &cmdOptions{enums: enumFlag{}}, stderr).Usage()
		return &exitError{code: 2, err: errors.New("")}
	}
	cmdUsage := func(format string, args ...any) error {
		fmt.Fprintf(stderr, format+"\n\n", args...)
		newFlagSet(name, c, &cmdOptions{enums: enumFlag{}}, stderr).Usage()
		return &exitError{code: 2, err: errors.New("")}
	}
	if fs.NArg() > 0 {
		return cmdUsage("%s: unexpected argument %q", name, fs.Arg(0))
	}
	if name == "version" {
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	if o.file == "" {
		return cmdUsage("%s: -c FILE is required", name)
	}
	var years athena.Years
	var from, to time.Time
	switch name {
	case "athena-ddl":
		if o.sink == "" {
			return cmdUsage("athena-ddl: --sink NAME is required")
		}
		var err error
		if years, err = athena.ParseYears(o.years); err != nil {
			return cmdUsage("athena-ddl: --years: %v", err)
		}
	case "replay":
		if o.source == "" || o.from == "" || o.to == "" {
			return cmdUsage("replay: --source, --from and --to are required")
		}
		var err error
		if from, err = time.Parse(time.RFC3339, o.from); err != nil {
			return cmdUsage("replay: --from: want an RFC 3339 time, not %q", o.from)
		}
		if to, err = time.Parse(time.RFC3339, o.to); err != nil {
			return cmdUsage("replay: --to: want an RFC 3339 time, not %q", o.to)
		}
		if !to.After(from) {
			return cmdUsage("replay: --to must be after --from")
		}
	}
	cfg, src, err := fetchConfig(ctx, o.file)
	if name == "validate" {
		return validate(cfg, err, stdout, stderr)
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	switch name {
	case "athena-ddl":
		ddl, err := athena.DDL(cfg, o.sink, athena.Options{Database: o.database, Years: years, Enums: o.enums, Injected: o.injected})
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		fmt.Fprint(stdout, ddl)
		if strings.Contains(ddl, athena.PlaceholderBucket) {
			fmt.Fprintf(stderr, "athena-ddl: sink %s writes local files; LOCATION is a placeholder (%s...): set it to where the files are uploaded\n", o.sink, athena.PlaceholderBucket)
		}
		return nil
	case "replay":
		var routes []string
		if o.routes != "" {
			routes = strings.Split(o.routes, ",")
		}
		if err := replayConfig(cfg, o.source, routes); err != nil {
			return &exitError{code: 1, err: err}
		}
		return runPipeline(ctx, cfg, src, stdout, pipeline.Replay(from, to))
	}
	src.reload = true
	return runPipeline(ctx, cfg, src, stdout)
}

// validate prints what validate finds in one pass (configProblems), and
// OK when none of it is an error.
func validate(cfg *config.Config, err error, stdout, stderr io.Writer) error {
	problems, err := configProblems(cfg, err)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	for _, w := range problems {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintln(stdout, "OK")
	return nil
}

// configProblems adds to what config.Parse returned (cfg, decoded as far
// as it went, and err listing its errors) a warning for each file glob
// that matches nothing here: it may match where the service runs, and run
// stops on it otherwise. It returns the warnings when there is no error,
// and else an error that is every problem, warnings included, by line.
// processor validate prints these, and a reload logs them.
func configProblems(cfg *config.Config, err error) (config.Errors, error) {
	var problems config.Errors
	if err != nil && (!errors.As(err, &problems) || cfg == nil) {
		return nil, err // unreadable, or YAML that does not parse
	}
	if err == nil {
		problems = append(problems, cfg.Warnings...)
	}
	for i, src := range cfg.Sources {
		if src.Type != "file" {
			continue
		}
		for j, p := range src.File.Paths {
			if len(filesource.Unmatched([]string{p})) > 0 {
				problems = append(problems, cfg.Warning(fmt.Sprintf("sources[%d].file.paths[%d]", i, j),
					"%q matches no file here; run stops with \"no file matches\" unless it matches where the service runs", p))
			}
		}
	}
	problems.Sort()
	if err != nil {
		return nil, problems
	}
	return problems, nil
}

func runPipeline(ctx context.Context, cfg *config.Config, src configSource, stdout io.Writer, opts ...pipeline.Option) error {
	// SIGHUP means "reload" to operators: caught from here on, it never
	// ends the process unflushed (its default action).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log, err := service.NewLogger(cfg.Service.LogLevel, cfg.Service.Name)
	if err != nil {
		return err
	}
	defer log.Sync()
	p, err := pipeline.New(cfg, log, opts...)
	if err != nil {
		return err
	}
	if cfg.Service.HTTPListen != "" {
		listenOpts := []service.ListenOption{service.WithFailingSinks(p.FailingSinks)}
		if cfg.Service.Tap {
			hub := newTapHub(cfg)
			p.SetTap(hub)
			listenOpts = append(listenOpts, service.WithTap(hub))
		}
		srv, err := service.Listen(cfg.Service.HTTPListen, p.Ready, log, listenOpts...)
		if err != nil {
			return fmt.Errorf("service.http_listen %q: %w (set another address, or \"\" to run without /metrics)", cfg.Service.HTTPListen, err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Close(sctx)
		}()
	}
	// In a container (ECS Fargate), let the GC work to 90 % of the task's
	// memory instead of doubling the heap: buffers are sized by config,
	// the GC's headroom is not. GOMEMLIMIT, if set, wins.
	limit, err := memlimit.Set(memlimit.WithRatio(0.9), memlimit.WithProvider(memlimit.FromCgroup))
	if err != nil && !errors.Is(err, memlimit.ErrNoLimit) {
		log.Warn("could not read the container memory limit", zap.Error(err))
	}
	logWarnings(log, cfg)
	setConfigInfo(src.hash)
	log.Info("pipeline starting", zap.String("config", cfg.File), zap.String("hash", shortHash(src.hash)), zap.String("version", versionString()), memoryLimitField(limit))
	start := time.Now()
	stopProgress := func() {}
	if p.Finite() {
		// A run that ends (files, archives, a replay) says how far it is.
		label := "run"
		if len(opts) > 0 {
			label = "replay"
		}
		pctx, cancel := context.WithCancel(ctx)
		shown := make(chan struct{})
		go func() { p.ShowProgress(pctx, os.Stderr, label); close(shown) }()
		stopProgress = func() { cancel(); <-shown } // the summary follows the last line
	}
	stopEMF := startEMF(cfg, log)
	stopReload := startReload(ctx, p, src, hup, log)
	err = p.Run(ctx)
	stopReload()
	stopProgress()
	stopEMF()
	sum := p.Summary()
	sum.Print(stdout)
	logSummary(stdout, log, sum)
	fmt.Fprintf(stdout, "elapsed: %s\n", time.Since(start).Round(time.Millisecond))
	if err != nil {
		return err
	}
	if in, out := sum.Balance(); in != out {
		return fmt.Errorf("accounting mismatch: %d records in, %d accounted for", in, out)
	}
	if ctx.Err() != nil {
		log.Info("stopped by signal after flushing")
	}
	return nil
}

// versionString is set at build time with
// -ldflags "-X github.com/sluice-data/sluice/internal/buildinfo.Version=...".
func versionString() string { return buildinfo.String() }
