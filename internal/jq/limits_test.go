package jq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fastjson"

	"github.com/sluice-data/sluice/internal/testutil"
)

// hostile are programs that never end, never stop producing, or grow
// without bound, on the records they run on.
var hostile = []struct {
	expr, rec, limit string
}{
	{`until(.n == 0; .n -= 1)`, `{"n":-1}`, LimitTimeout},
	{`repeat(.)`, `{"n":1}`, LimitOutputs},
	{`[range(1e9)]`, `{}`, LimitTimeout},
	{`[limit(100000000; repeat("aaaaaaaa"))] | add`, `{}`, LimitTimeout},
	{`[range(1e8)] | tostring`, `{}`, LimitTimeout},
	{`"x" * 20000000`, `{}`, LimitOutputBytes},
	{`range(1000) | "x" * 20000`, `{}`, LimitOutputBytes},
	{`reduce range(40) as $i ([0]; [., .])`, `{}`, LimitOutputBytes},
	{`def f: f; f`, `{}`, LimitTimeout},
}

// envFor bounds an evaluation that should stop at limit. Output bounds
// are tested without a deadline, so that a slow machine cannot turn them
// into timeouts.
func envFor(limit string) *Env {
	l := DefaultLimits
	if limit != LimitTimeout {
		l.Timeout = time.Hour
	}
	return NewEnv(context.Background(), l)
}

func TestRunLimits(t *testing.T) {
	for _, tt := range hostile {
		env := envFor(tt.limit)
		e, err := Compile(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		var got error
		testutil.Bounded(tt.expr, func() { _, got = env.Run(e, fastjson.MustParse(tt.rec)) })
		var le *LimitError
		if !errors.As(got, &le) || le.Limit != tt.limit {
			t.Errorf("%s: err = %v, want a %s LimitError", tt.expr, got, tt.limit)
		}
	}
}

// TestAppendTextLimits evaluates the hostile programs as partition keys
// and ids are evaluated.
func TestAppendTextLimits(t *testing.T) {
	for _, tt := range hostile {
		env := envFor(tt.limit)
		e, err := Compile(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		var got error
		testutil.Bounded(tt.expr, func() { _, got = env.AppendText(e, nil, fastjson.MustParse(tt.rec)) })
		var le *LimitError
		if !errors.As(got, &le) || le.Limit != tt.limit {
			t.Errorf("%s: err = %v, want a %s LimitError", tt.expr, got, tt.limit)
		}
	}
}

func TestLimitMessages(t *testing.T) {
	tests := []struct {
		expr   string
		limits Limits
		want   string
	}{
		{`until(.n == 0; .n -= 1)`, DefaultLimits, "jq until(.n == 0; .n -= 1): evaluation exceeded 100ms (service.jq.timeout)"},
		{`repeat(.)`, DefaultLimits, "jq repeat(.): evaluation produced more than 1000 outputs (service.jq.max_outputs)"},
		{`"x" * 20000000`, Limits{Timeout: time.Hour}, `jq "x" * 20000000: evaluation output over 16MiB (service.jq.max_output_bytes)`},
		{`.a[]`, Limits{MaxOutputs: 2}, "jq .a[]: evaluation produced more than 2 outputs (service.jq.max_outputs)"},
		{`.`, Limits{MaxOutputBytes: 10}, "jq .: evaluation output over 10 bytes (service.jq.max_output_bytes)"},
		{`until(false; .)`, Limits{Timeout: 20 * time.Millisecond}, "jq until(false; .): evaluation exceeded 20ms (service.jq.timeout)"},
	}
	for _, tt := range tests {
		e, err := Compile(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		env := NewEnv(context.Background(), tt.limits)
		var got error
		testutil.Bounded(tt.expr, func() { _, got = env.Run(e, fastjson.MustParse(`{"n":-1,"a":[1,2,3]}`)) })
		if got == nil || got.Error() != tt.want {
			t.Errorf("%s: err = %v, want %s", tt.expr, got, tt.want)
		}
	}
}

// TestWithinLimits checks that bounded evaluations still give jq's answers,
// also right after one was stopped.
func TestWithinLimits(t *testing.T) {
	env := NewEnv(context.Background(), Limits{MaxOutputs: 3, MaxOutputBytes: 100})
	loop, _ := Compile(`until(false; .)`)
	three, _ := Compile(`.a[]`)
	key, _ := Compile(`.a | map(tostring) | join("-")`)
	rec := fastjson.MustParse(`{"a":[1,2,3]}`)
	for range 3 {
		if _, err := env.Run(loop, rec); err == nil {
			t.Fatal("until(false; .) ended")
		}
		outs, err := env.Run(three, rec)
		if err != nil || fmt.Sprint(outs) != "[1 2 3]" {
			t.Fatalf(".a[] = %v, %v", outs, err)
		}
		got, err := env.AppendText(key, nil, rec)
		if err != nil || string(got) != "1-2-3" {
			t.Fatalf("key = %q, %v", got, err)
		}
	}
}

// TestCancel checks that ending the parent stops a running evaluation at
// once, with ErrCanceled rather than a limit, and every later one.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	env := NewEnv(ctx, Limits{Timeout: time.Hour})
	e, _ := Compile(`until(.n == 0; .n -= 1)`)
	rec := fastjson.MustParse(`{"n":-1}`)
	time.AfterFunc(50*time.Millisecond, cancel)
	var err error
	testutil.Bounded("canceled evaluation", func() { _, err = env.Run(e, rec) })
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("err = %v, want ErrCanceled", err)
	}
	if !env.Canceled() {
		t.Error("Canceled() = false")
	}
	quick, _ := Compile(`.n + 1`)
	if _, err := env.Run(quick, rec); !errors.Is(err, ErrCanceled) {
		t.Errorf("after cancel: err = %v, want ErrCanceled", err)
	}
	if _, err := env.AppendText(quick, nil, rec); !errors.Is(err, ErrCanceled) {
		t.Errorf("after cancel: AppendText err = %v, want ErrCanceled", err)
	}
}

func TestJSONSize(t *testing.T) {
	tests := []struct {
		give string
		want int64
	}{
		{`"abc"`, 5},
		{`[1,2,3]`, 7},
		{`[-120,3.5,0,10]`, int64(len(`[-120,3.5,0,10]`))},
		{`{"a":[true,null],"b":"x"}`, int64(len(`{"a":[true,null],"b":"x"}`))},
	}
	for _, tt := range tests {
		e, _ := Compile(`.`)
		outs, err := e.Run(fastjson.MustParse(tt.give))
		if err != nil {
			t.Fatal(err)
		}
		if got := jsonSize(outs[0], 1<<20); got != tt.want {
			t.Errorf("jsonSize(%s) = %d, want %d", tt.give, got, tt.want)
		}
	}
	if !strings.Contains(formatBytes(3), "3 bytes") {
		t.Error(formatBytes(3))
	}
}
