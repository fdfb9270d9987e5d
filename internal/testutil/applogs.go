package testutil

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

// WriteAppLogs writes n synthetic planning-engine log lines (about 480
// bytes each, the shape the benchmarks measure): 20 project_ids with one or
// two plan versions each, event_timestamp in epoch seconds spread over 48
// hours in roughly increasing order, which gives about 1,500 Hive
// partitions with the seed's Firehose keys. The output depends only on n.
func WriteAppLogs(w io.Writer, n int) error {
	rng := rand.New(rand.NewPCG(42, 7))
	levels := []string{"DEBUG", "INFO", "INFO", "INFO", "INFO", "WARN", "ERROR"}
	engines := []string{"mozart-planner", "mozart-dispatcher", "mozart-scheduler"}
	msgs := []string{
		"plan run finished, %d operations scheduled across all lines of the plant",
		"capacity overload on line L%d, rescheduling downstream lots to keep due dates",
		"dispatch rule EDD applied to queue with %d waiting lots, selected highest priority",
		"solver iteration completed, objective improved by a small margin, id %d",
	}
	const start = 1730592000 // 2024-11-03T00:00:00Z
	const span = 48 * 3600
	var buf []byte
	for i := 0; i < n; i++ {
		p := rng.IntN(20)
		ver := "v2024.11." + strconv.Itoa(p%7+1)
		if p%2 == 0 && rng.IntN(2) == 0 {
			ver = "v2024.10." + strconv.Itoa(p%5+20)
		}
		ts := start + int64(i)*span/int64(n) + int64(rng.IntN(120)) - 60
		buf = buf[:0]
		buf = append(buf, `{"project_id":"P-`...)
		buf = append(buf, fmt.Sprintf("%03d", p)...)
		buf = append(buf, `","plan_ver":"`...)
		buf = append(buf, ver...)
		buf = append(buf, `","event_timestamp":`...)
		buf = strconv.AppendInt(buf, ts, 10)
		buf = append(buf, `,"level":"`...)
		buf = append(buf, levels[rng.IntN(len(levels))]...)
		buf = append(buf, `","engine":"`...)
		buf = append(buf, engines[rng.IntN(len(engines))]...)
		buf = append(buf, `","host":"ip-10-0-`...)
		buf = strconv.AppendInt(buf, int64(rng.IntN(10)), 10)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, int64(rng.IntN(250)), 10)
		buf = append(buf, `","message":"`...)
		buf = append(buf, fmt.Sprintf(msgs[rng.IntN(len(msgs))], rng.IntN(100000))...)
		buf = append(buf, `","run_id":"r-`...)
		buf = strconv.AppendInt(buf, int64(rng.IntN(1<<20)), 16)
		buf = append(buf, `","duration_ms":`...)
		buf = strconv.AppendInt(buf, int64(rng.IntN(8_000_000)), 10)
		buf = append(buf, `,"context":{"line":"L`...)
		buf = strconv.AppendInt(buf, int64(rng.IntN(9)+1), 10)
		buf = append(buf, `","load_pct":`...)
		buf = strconv.AppendFloat(buf, float64(rng.IntN(1000))/10+40, 'f', 1, 64)
		buf = append(buf, `,"shift":"`...)
		buf = append(buf, []string{"day", "swing", "night"}[rng.IntN(3)]...)
		buf = append(buf, `","cell":"C-`...)
		buf = strconv.AppendInt(buf, int64(rng.IntN(64)), 10)
		buf = append(buf, `"},"trace_id":"`...)
		buf = append(buf, fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())...)
		buf = append(buf, `","region":"ap-northeast-2","tags":["planning","mozart","`...)
		buf = append(buf, []string{"line-a", "line-b", "line-c", "assembly"}[rng.IntN(4)]...)
		buf = append(buf, `"],"version":"engine-4.`...)
		buf = strconv.AppendInt(buf, int64(rng.IntN(30)), 10)
		buf = append(buf, `.`...)
		buf = strconv.AppendInt(buf, int64(rng.IntN(100)), 10)
		buf = append(buf, `"}`+"\n"...)
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}
