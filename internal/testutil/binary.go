package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildBinary builds the Go package at pkg (a path such as
// "../cmd/processor") into dir/name and returns the binary's path.
func BuildBinary(dir, pkg, name string) (string, error) {
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// RunWithBinary is a TestMain body for the end-to-end packages: it builds
// pkg into a temporary directory, stores the binary's path in *bin, runs
// the tests and removes the directory. It returns the exit code for
// os.Exit.
func RunWithBinary(m interface{ Run() int }, pkg string, bin *string) int {
	dir, err := os.MkdirTemp("", "sluice-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildBinary(dir, pkg, filepath.Base(pkg)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
