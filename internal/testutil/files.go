package testutil

import (
	"os"
	"path/filepath"
	"sort"
)

// Files lists the files under dir, as paths relative to it, sorted; a
// missing dir has none.
func Files(t TB, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}
