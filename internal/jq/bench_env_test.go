package jq

import (
	"context"
	"testing"

	"github.com/valyala/fastjson"
)

// BenchmarkRunTransform is a jq transform's evaluation under a worker's
// Env, as the pipeline runs it.
func BenchmarkRunTransform(b *testing.B) {
	rec := fastjson.MustParse(records[0])
	e, _ := Compile(`{project: .project_id, year: (.event_timestamp | strftime("%Y"))}`)
	env := NewEnv(context.Background(), DefaultLimits)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = env.Run(e, rec)
	}
}
