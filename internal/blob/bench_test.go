package blob

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFileStorePut writes objects the way the bench's lake does:
// each into a new directory six levels down (partition keys), fsynced. It
// reports the process's CPU time per object besides the wall time, which
// the disk's fsync latency dominates.
func BenchmarkFileStorePut(b *testing.B) {
	fs, err := NewFileStore(filepath.Join(b.TempDir(), "lake"))
	if err != nil {
		b.Fatal(err)
	}
	body := Bytes(make([]byte, 64<<10))
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := cpu()
	i := 0
	for b.Loop() {
		i++
		key := fmt.Sprintf("project_id=P-%03d/plan_ver=v1/year=2024/month=11/day=%02d/hour=%02d/app+f+%d.parquet", i%20, i/480%28+1, i/20%24, i)
		if err := fs.Put(context.Background(), key, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpu()-start)/float64(b.N), "cpu-ns/op")
}
