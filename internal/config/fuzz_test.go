package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any bytes give a config or errors, never a panic, every
// error names the file, and no error prints a value that came from the
// environment.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("a: &x [*x]\nb: *x\n"))
	f.Add([]byte("routes:\n  - transforms: [{explode: {field: [1]}}]\n"))
	f.Add([]byte("service: {name: [${A}, {b: ${B:-x}}], workers: ${C}}  # ${D}\nsinks: [{url: \"s3://${E}\"}]\n"))
	const secret = "s3cr3t #*\"Zq9\n: x"
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("f.yaml", data, func(string) (string, bool) { return secret, true })
		if errs, ok := err.(Errors); ok {
			for _, e := range errs {
				if e.File != "f.yaml" {
					t.Fatalf("error without the file: %v", e)
				}
				if !strings.Contains(string(data), "Zq9") && strings.Contains(e.Error(), "Zq9") {
					t.Fatalf("error prints the secret: %v", e)
				}
			}
		}
	})
}
