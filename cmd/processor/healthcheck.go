package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// defaultHealthURL matches service.http_listen's default (":8080").
const defaultHealthURL = "http://127.0.0.1:8080/healthz"

// healthcheck is the container health check for images without a shell
// or curl (distroless): GET /healthz, exit 0 on 200 and 1 otherwise.
// The address comes from --url, else from -c's service.http_listen, else
// the default port.
func healthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	url := fs.String("url", "", "URL to GET (default "+defaultHealthURL+")")
	file := fs.String("c", "", "configuration whose service.http_listen names the port")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if help, err := parseOwn(fs, args, healthcheckUsage, stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(stderr, "healthcheck: unexpected argument %q", fs.Arg(0))
	}
	target := *url
	if target == "" {
		target = defaultHealthURL
		if *file != "" {
			cfg, err := loadConfig(ctx, *file)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			if cfg.Service.HTTPListen == "" {
				return &exitError{code: 1, err: errors.New("healthcheck: service.http_listen is empty: no /healthz to ask")}
			}
			_, port, err := net.SplitHostPort(cfg.Service.HTTPListen)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("healthcheck: service.http_listen %q: %w", cfg.Service.HTTPListen, err)}
			}
			target = "http://127.0.0.1:" + port + "/healthz"
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("healthcheck: %w", err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("healthcheck: %w", err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return &exitError{code: 1, err: fmt.Errorf("healthcheck: %s: %s", target, resp.Status)}
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

const healthcheckUsage = `usage: processor healthcheck [--url URL | -c FILE] [--timeout 3s]

The container health check for images without a shell or curl: GET the
service's /healthz and exit 0 on 200, 1 otherwise.
`
