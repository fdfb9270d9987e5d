package main

import (
	"context"
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
		return ownUsageError(stderr, fs, healthcheckUsage, "healthcheck: unexpected argument %q", fs.Arg(0))
	}
	target := *url
	if target == "" {
		target = defaultHealthURL
		if *file != "" {
			base, err := serviceURL(ctx, *file, "healthcheck", "/healthz")
			if err != nil {
				return err
			}
			target = base + "/healthz"
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

// serviceURL is the base URL (http://host:port) of the service that the
// configuration at file runs: its service.http_listen, with an unspecified
// host (":8080", "0.0.0.0:8080") read as this machine. cmd and path name
// the asking command and endpoint in errors.
func serviceURL(ctx context.Context, file, cmd, path string) (string, error) {
	cfg, err := loadConfig(ctx, file)
	if err != nil {
		return "", &exitError{code: 1, err: err}
	}
	if cfg.Service.HTTPListen == "" {
		return "", &exitError{code: 1, err: fmt.Errorf("%s: service.http_listen is empty: no %s to ask", cmd, path)}
	}
	host, port, err := net.SplitHostPort(cfg.Service.HTTPListen)
	if err != nil {
		return "", &exitError{code: 1, err: fmt.Errorf("%s: service.http_listen %q: %w", cmd, cfg.Service.HTTPListen, err)}
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}
