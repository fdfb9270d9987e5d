package buildinfo

import (
	"runtime/debug"
	"testing"
)

func TestStrings(t *testing.T) {
	defer func(v, r string, f func() (*debug.BuildInfo, bool)) { Version, Revision, read = v, r, f }(Version, Revision, read)
	tests := []struct {
		name            string
		version, ldRev  string
		info            *debug.BuildInfo
		want, createdBy string
	}{
		{"ldflags", "0.4.0", "", &debug.BuildInfo{GoVersion: "go1.26.0", Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}},
			"sluice 0.4.0 (build 0123456789ab, go1.26.0)", "sluice version 0.4.0 (build 0123456789ab)"},
		{"dirty tree", "0.4.0", "", &debug.BuildInfo{GoVersion: "go1.26.0", Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "true"}}},
			"sluice 0.4.0 (build 0123456789ab-dirty, go1.26.0)", "sluice version 0.4.0 (build 0123456789ab-dirty)"},
		{"go install", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.4.1"}},
			"sluice v0.4.1 (build unknown, go1.26.0)", "sluice version v0.4.1 (build unknown)"},
		{"docker, revision by ldflags", "0.4.0", "fedcba9876543210", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			"sluice 0.4.0 (build fedcba987654, go1.26.0)", "sluice version 0.4.0 (build fedcba987654)"},
		// go run, or go build with -buildvcs=false: nothing recorded, so
		// the release this tree is working towards.
		{"go run", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			"sluice " + Current + " (build unknown, go1.26.0)", "sluice version " + Current + " (build unknown)"},
		// go build in a clone: Go records a pseudo-version, which says
		// less than Current; the revision is the build.
		{"go build in a clone", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v0.0.0-20261130122900-48bfc157fbb5+dirty"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "48bfc157fbb5232bd215540b5a744ff979589562"}, {Key: "vcs.modified", Value: "true"}}},
			"sluice " + Current + " (build 48bfc157fbb5-dirty, go1.26.0)", "sluice version " + Current + " (build 48bfc157fbb5-dirty)"},
		{"docker without a version", "", "fedcba9876543210", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			"sluice " + Current + " (build fedcba987654, go1.26.0)", "sluice version " + Current + " (build fedcba987654)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			Version, Revision = tt.version, tt.ldRev
			read = func() (*debug.BuildInfo, bool) { return tt.info, true }
			if got := String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			app, v, b := CreatedBy()
			// parquet-go's CreatedBy option joins the parts this way.
			if got := app + " version " + v + "(build " + b + ")"; got != tt.createdBy {
				t.Errorf("created_by = %q, want %q", got, tt.createdBy)
			}
		})
	}
}
