package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any bytes give a config or errors, never a panic, and every
// error names the file.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: &x [*x]\nb: *x\n"))
	f.Add([]byte("routes:\n  - transforms: [{explode: {field: [1]}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("f.yaml", data, func(string) (string, bool) { return "v", true })
		if errs, ok := err.(Errors); ok {
			for _, e := range errs {
				if e.File != "f.yaml" {
					t.Fatalf("error without the file: %v", e)
				}
			}
		}
	})
}
