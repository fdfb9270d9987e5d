// Package buildinfo says which Sluice this is: the release version, set at
// build time, and the VCS revision Go recorded. The version subcommand,
// the start-up log line and the created_by of every Parquet file show it.
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
	"sync"

	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Current is the release this source tree is, or is working towards:
// what a build says when nothing else names a version (go run, go build
// with no VCS information or only a pseudo-version). It is raised at each
// release, whose build also sets Version.
const Current = "0.1.0-dev"

// Version is the release, set at build time:
//
//	go build -ldflags "-X github.com/sluice-data/sluice/internal/buildinfo.Version=0.4.0" ./cmd/processor
//
// Left empty, the module version Go recorded is used when it is a release
// (go install ...@v0.4.0), and Current otherwise.
var Version = ""

// Revision is the VCS revision, for builds without VCS information (a
// Docker build context has no .git); set it like Version. Go's own record
// of the revision wins when there is one.
var Revision = ""

// read is debug.ReadBuildInfo, parsed once: it parses the binary's module
// information on every call, and every Parquet object names its writer
// (CreatedBy). Tests replace it.
var read = sync.OnceValues(debug.ReadBuildInfo)

// Release returns the version: Version; else the module version Go
// recorded, when that is a release and not a pseudo-version (which Go
// derives from the commit for any build in a clone); else Current.
func Release() string {
	if Version != "" && Version != "dev" {
		return Version
	}
	if bi, ok := read(); ok {
		if v := bi.Main.Version; semver.IsValid(strings.TrimSuffix(v, "+dirty")) && !module.IsPseudoVersion(strings.TrimSuffix(v, "+dirty")) {
			return v
		}
	}
	return Current
}

// Build returns the revision the binary was built from, 12 hex digits with
// "-dirty" when the work tree had changes, or "unknown".
func Build() string {
	rev, dirty := Revision, false
	if bi, ok := read(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if rev == "" {
		return "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}

// String is the line `processor version` prints and the start-up log
// carries: sluice 0.4.0 (build 0123456789ab, go1.26.0).
func String() string {
	goVersion := "unknown Go"
	if bi, ok := read(); ok {
		goVersion = bi.GoVersion
	}
	return fmt.Sprintf("sluice %s (build %s, %s)", Release(), Build(), goVersion)
}

// CreatedBy is the created_by of Parquet files, in parquet-mr's form that
// readers parse: "sluice version 0.4.0 (build 0123456789ab)". It returns
// the three parts parquet-go's CreatedBy option takes; parquet-go joins
// version and "(build" without a space, so the version carries it.
func CreatedBy() (app, version, build string) {
	return "sluice", Release() + " ", Build()
}
