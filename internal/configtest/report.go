package configtest

import (
	"context"
	"fmt"
	"io"

	"github.com/sluice-data/sluice/internal/config"
)

// Report runs every test of files in order and writes, per test, "PASS
// name" or "FAIL name" followed by its diffs indented by two spaces, then
// "N passed, M failed". It returns the number of tests that failed; a test
// that cannot run (the pipeline fails to build or run) fails with the
// error as its diff.
func Report(ctx context.Context, cfg *config.Config, files []*File, w io.Writer) int {
	passed, failed := 0, 0
	for _, f := range files {
		for _, t := range f.Tests {
			diffs, err := Run(ctx, cfg, t)
			if err != nil {
				diffs = append(diffs, "error: "+err.Error())
			}
			if len(diffs) == 0 {
				passed++
				fmt.Fprintf(w, "PASS %s\n", t.Name)
				continue
			}
			failed++
			fmt.Fprintf(w, "FAIL %s\n", t.Name)
			for _, d := range diffs {
				fmt.Fprintf(w, "  %s\n", d)
			}
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", passed, failed)
	return failed
}
