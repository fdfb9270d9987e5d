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
	"runtime/debug"
	"strings"
	"syscall"
	"time"
	_ "time/tzdata" // IANA zones for epoch_to_utc in minimal containers

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/athena"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/pipeline"
	"github.com/sluice-data/sluice/internal/service"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `usage: processor <command> [flags]

commands:
  run -c FILE        run the pipeline the configuration describes
  validate -c FILE   check a configuration; prints OK or every error
  replay -c FILE --source NAME --from T1 --to T2 [--routes a,b]
                     run a time range of a kafka or archive source again through
                     today's routes (no group joined, nothing committed)
  athena-ddl -c FILE --sink NAME [--database DB]
                     print the Athena table (with partition projection) for a Parquet sink
  iam-policy -c FILE [--account ID] [--region R]
                     print the task role's least-privilege IAM policy for FILE
  healthcheck [--url URL | -c FILE]
                     exit 0 when /healthz answers 200 (container health check)
  version            print the version

-c takes a path, s3://bucket/key or ssm:/parameter/name.
`

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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError(stderr, "no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "validate", "run", "athena-ddl", "replay":
	case "healthcheck":
		return healthcheck(ctx, rest, stdout, stderr)
	case "iam-policy":
		return iamPolicy(ctx, rest, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		return usageError(stderr, "unknown command %q", cmd)
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("c", "", "configuration file")
	var sink, database *string
	if cmd == "athena-ddl" {
		sink = fs.String("sink", "", "sink name")
		database = fs.String("database", "", "Athena database")
	}
	var source, fromS, toS, routesS *string
	if cmd == "replay" {
		source = fs.String("source", "", "source name")
		fromS = fs.String("from", "", "RFC 3339 start (inclusive)")
		toS = fs.String("to", "", "RFC 3339 end (exclusive)")
		routesS = fs.String("routes", "", "comma-separated routes (default: every route from the source)")
	}
	if err := fs.Parse(rest); err != nil {
		return usageError(stderr, "%s: %v", cmd, err)
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "%s: unexpected argument %q", cmd, fs.Arg(0))
	}
	if *file == "" {
		return usageError(stderr, "%s: -c FILE is required", cmd)
	}
	cfg, err := loadConfig(ctx, *file)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	switch cmd {
	case "validate":
		for _, w := range cfg.Warnings {
			fmt.Fprintln(stderr, w)
		}
		fmt.Fprintln(stdout, "OK")
		return nil
	case "athena-ddl":
		if *sink == "" {
			return usageError(stderr, "athena-ddl: --sink NAME is required")
		}
		ddl, err := athena.DDL(cfg, *sink, *database)
		if err != nil {
			return &exitError{code: 1, err: err}
		}
		fmt.Fprint(stdout, ddl)
		return nil
	case "replay":
		if *source == "" || *fromS == "" || *toS == "" {
			return usageError(stderr, "replay: --source, --from and --to are required")
		}
		from, err := time.Parse(time.RFC3339, *fromS)
		if err != nil {
			return usageError(stderr, "replay: --from: want an RFC 3339 time, not %q", *fromS)
		}
		to, err := time.Parse(time.RFC3339, *toS)
		if err != nil {
			return usageError(stderr, "replay: --to: want an RFC 3339 time, not %q", *toS)
		}
		if !to.After(from) {
			return usageError(stderr, "replay: --to must be after --from")
		}
		var routes []string
		if *routesS != "" {
			routes = strings.Split(*routesS, ",")
		}
		if err := replayConfig(cfg, *source, routes); err != nil {
			return &exitError{code: 1, err: err}
		}
		return runPipeline(ctx, cfg, stdout, pipeline.Replay(from, to))
	}
	return runPipeline(ctx, cfg, stdout)
}

func runPipeline(ctx context.Context, cfg *config.Config, stdout io.Writer, opts ...pipeline.Option) error {
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
		srv, err := service.Listen(cfg.Service.HTTPListen, p.Ready, log)
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
	for _, w := range cfg.Warnings {
		log.Warn("configuration warning", zap.String("file", w.File), zap.Int("line", w.Line), zap.String("key", w.Path), zap.String("problem", w.Msg))
	}
	log.Info("pipeline starting", zap.String("config", cfg.File), zap.String("version", versionString()), zap.Int64("go_memory_limit", limit))
	start := time.Now()
	stopProgress := func() {}
	if len(opts) > 0 {
		var pctx context.Context
		pctx, stopProgress = context.WithCancel(ctx)
		go progress(pctx, p, os.Stderr)
	}
	stopEMF := startEMF(cfg, log)
	err = p.Run(ctx)
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

func versionString() string {
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 && v == "dev" {
				v = "dev-" + s.Value[:12]
			}
		}
		return fmt.Sprintf("sluice %s (%s)", v, bi.GoVersion)
	}
	return "sluice " + v
}
