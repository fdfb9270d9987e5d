package jq

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-data/sluice/internal/metrics"
)

// Limits bound one evaluation of an expression on one record. A jq program
// is user code run on outside data: `until(.n == 0; .n -= 1)` on n = -1
// never ends, `repeat(.)` never stops producing, `[range(1e9)]` grows one
// array without bound. Without limits one such record hangs or kills every
// worker, and a restart reads it again.
type Limits struct {
	// Timeout is the wall time one evaluation may take. gojq checks it
	// between VM steps, so loops, generators and growing arrays stop.
	Timeout time.Duration
	// MaxOutputs is how many values one evaluation may produce.
	MaxOutputs int
	// MaxOutputBytes is the total size of those values, counted as the
	// length of their JSON text.
	MaxOutputBytes int64
}

// DefaultLimits are the defaults of service.jq.
var DefaultLimits = Limits{Timeout: 100 * time.Millisecond, MaxOutputs: 1000, MaxOutputBytes: 16 << 20}

// The bounds, as LimitError.Limit and the limit label of
// sluice_jq_limit_exceeded_total name them: the keys under service.jq.
const (
	LimitTimeout     = "timeout"
	LimitOutputs     = "max_outputs"
	LimitOutputBytes = "max_output_bytes"
)

// LimitError is an evaluation stopped at a bound. The record goes to the
// error output as processing-failed.
type LimitError struct {
	Limit string // LimitTimeout, LimitOutputs or LimitOutputBytes
	msg   string
}

func (e *LimitError) Error() string { return e.msg }

func limitError(limit, msg string) *LimitError {
	metrics.JQLimitExceeded.WithLabelValues(limit).Inc()
	return &LimitError{Limit: limit, msg: msg + " (service.jq." + limit + ")"}
}

// ErrCanceled is returned for an evaluation stopped because the Env's
// parent context ended (shutdown past its deadline, or the pipeline
// failed). It says nothing about the record: the caller must neither
// write it nor send it to an error output, and must not ack it, so that it
// is read again.
var ErrCanceled = errors.New("jq evaluation canceled")

// Env evaluates expressions for one goroutine (one pipeline worker) under
// Limits. It holds one timer and one done channel for all its evaluations,
// so bounding an evaluation costs no allocation; a new channel is made
// only after an evaluation was stopped. An Env must not be used by two
// goroutines at once.
type Env struct {
	limits Limits
	parent context.Context
	timer  *time.Timer

	mu       sync.Mutex
	done     chan struct{}
	closed   bool      // done is closed
	running  bool      // an evaluation is under way
	deadline time.Time // of the running evaluation
	cause    error     // why done was closed
	canceled bool      // parent is done
}

// NewEnv returns an Env whose evaluations are bounded by l and stopped
// when parent ends. Zero fields of l take DefaultLimits.
func NewEnv(parent context.Context, l Limits) *Env {
	if l.Timeout <= 0 {
		l.Timeout = DefaultLimits.Timeout
	}
	if l.MaxOutputs <= 0 {
		l.MaxOutputs = DefaultLimits.MaxOutputs
	}
	if l.MaxOutputBytes <= 0 {
		l.MaxOutputBytes = DefaultLimits.MaxOutputBytes
	}
	e := &Env{limits: l, parent: parent, done: make(chan struct{})}
	e.timer = time.AfterFunc(time.Hour, e.expire)
	e.timer.Stop()
	context.AfterFunc(parent, e.cancel)
	return e
}

// Limits returns the bounds in force.
func (e *Env) Limits() Limits { return e.limits }

// Canceled reports whether the parent context has ended: evaluations fail
// with ErrCanceled from then on.
func (e *Env) Canceled() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.canceled
}

// expire is the timer's callback. A callback of an earlier evaluation
// that fires late finds the deadline not yet reached and does nothing.
func (e *Env) expire() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running && !e.closed && !time.Now().Before(e.deadline) {
		e.closed, e.cause = true, context.DeadlineExceeded
		close(e.done)
	}
}

func (e *Env) cancel() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.canceled = true
	if e.running && !e.closed {
		e.closed, e.cause = true, context.Canceled
		close(e.done)
	}
}

// begin arms the deadline for one evaluation.
func (e *Env) begin() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.canceled {
		return ErrCanceled
	}
	if e.closed {
		e.done, e.closed, e.cause = make(chan struct{}), false, nil
	}
	e.running = true
	e.deadline = time.Now().Add(e.limits.Timeout)
	e.timer.Reset(e.limits.Timeout)
	return nil
}

// end disarms it and says why the evaluation was stopped, if it was.
func (e *Env) end() error {
	e.timer.Stop()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.running = false
	switch {
	case !e.closed:
		return nil
	case e.cause == context.Canceled:
		return ErrCanceled
	default:
		return limitError(LimitTimeout, "evaluation exceeded "+e.limits.Timeout.String())
	}
}

// evalCtx is the Env as gojq sees it: a context whose Done channel closes
// at the deadline or on cancellation. gojq checks it before every VM step.
type evalCtx Env

func (c *evalCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *evalCtx) Done() <-chan struct{}       { return c.done } // replaced only by begin, on the same goroutine
func (c *evalCtx) Value(key any) any           { return c.parent.Value(key) }
func (c *evalCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// outputsError and bytesError word the output bounds.
func (e *Env) outputsError() error {
	return limitError(LimitOutputs, "evaluation produced more than "+strconv.Itoa(e.limits.MaxOutputs)+" outputs")
}

func (e *Env) bytesError() error {
	return limitError(LimitOutputBytes, "evaluation output over "+formatBytes(e.limits.MaxOutputBytes))
}

// formatBytes writes n as config sizes are written: 16MiB, 512KiB, 1000.
func formatBytes(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// jsonSize returns about the length of v's JSON text, but stops counting
// once it passes budget: values may share structure (`[., .]` repeated
// doubles the text, not the memory), so a full walk could take forever.
func jsonSize(v any, budget int64) int64 {
	var n int64
	sizeWalk(v, &n, budget)
	return n
}

// sizeWalk adds v's size to *n and reports whether it is still within
// budget. It allocates nothing: it runs on every output.
func sizeWalk(v any, n *int64, budget int64) bool {
	switch t := v.(type) {
	case nil:
		*n += 4
	case bool:
		*n += 5
		if t {
			*n--
		}
	case string:
		*n += int64(len(t)) + 2
	case int:
		*n += digits(t)
	case float64:
		var buf [32]byte
		*n += int64(len(strconv.AppendFloat(buf[:0], t, 'g', -1, 64)))
	case *big.Int:
		*n += int64(t.BitLen()/3 + 2)
	case []any:
		*n += 1 + int64(max(len(t), 1)) // brackets and commas
		if *n > budget {
			return false
		}
		for _, x := range t {
			if !sizeWalk(x, n, budget) {
				return false
			}
		}
	case map[string]any:
		*n += 1 + int64(max(len(t), 1))
		if *n > budget {
			return false
		}
		for k, x := range t {
			*n += int64(len(k)) + 3
			if !sizeWalk(x, n, budget) {
				return false
			}
		}
	default:
		*n += int64(len(fmt.Sprint(t)))
	}
	return *n <= budget
}

func digits(i int) int64 {
	n := int64(1)
	if i < 0 {
		n++
	}
	for i >= 10 || i <= -10 {
		i /= 10
		n++
	}
	return n
}
