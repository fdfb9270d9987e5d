// Command gen writes N synthetic records for the bench harness: app logs
// (see testutil.WriteAppLogs for their shape), Security Hub findings as
// EventBridge events, or CloudWatch Metric Streams JSON.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"github.com/sluice-data/sluice/internal/testutil"
)

func main() {
	n := flag.Int("n", 1_000_000, "records")
	out := flag.String("o", "-", "output file")
	workload := flag.String("workload", "app_logs", "app_logs | security | metrics")
	flag.Parse()
	f := os.Stdout
	if *out != "-" {
		var err error
		if f, err = os.Create(*out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var err error
	switch *workload {
	case "app_logs":
		err = testutil.WriteAppLogs(w, *n)
	case "security":
		err = writeFindings(w, *n)
	case "metrics":
		err = writeMetrics(w, *n)
	default:
		err = fmt.Errorf("unknown workload %q", *workload)
	}
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
