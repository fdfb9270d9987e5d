// Command gen writes N synthetic app-log records for the bench harness; see
// testutil.WriteAppLogs for their shape.
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
	err := testutil.WriteAppLogs(w, *n)
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
