package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// version and revision may be set at link time when the build has no VCS
// metadata (a container build without .git):
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.revision=abc123" ./cmd/personio-entra
//
// Otherwise they come from the module and VCS data the Go toolchain embeds.
var (
	version  string
	revision string
)

// buildInfo is what personio_entra_build_info and `personio-entra version`
// report.
type buildInfo struct {
	Version   string
	Revision  string
	GoVersion string
}

// readBuildInfo combines the link-time overrides with debug.ReadBuildInfo.
// ok is false when the binary carries no build information (never for a
// normal `go build`, but possible for stripped or unusual builds).
func readBuildInfo(linkVersion, linkRevision string, bi *debug.BuildInfo, ok bool) buildInfo {
	out := buildInfo{Version: "unknown", Revision: "unknown", GoVersion: runtime.Version()}
	if ok && bi != nil {
		if bi.GoVersion != "" {
			out.GoVersion = bi.GoVersion
		}
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			out.Version = v
		}
		var rev string
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			if modified {
				rev += "-dirty"
			}
			out.Revision = rev
		}
	}
	if linkVersion != "" {
		out.Version = linkVersion
	}
	if linkRevision != "" {
		out.Revision = linkRevision
	}
	return out
}

func currentBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	return readBuildInfo(version, revision, bi, ok)
}

var buildInfoGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
	Name: "personio_entra_build_info",
	Help: "Always 1; the labels name the running build (version, VCS revision, Go version).",
}, []string{"version", "revision", "goversion"})

func init() {
	b := currentBuildInfo()
	buildInfoGauge.WithLabelValues(b.Version, b.Revision, b.GoVersion).Set(1)

	register("version", command{
		summary: "print the version, VCS revision and Go version of this binary",
		run: func(_ context.Context, env *environment, args []string) error {
			if len(args) > 0 {
				return usageError{msg: "version takes no arguments"}
			}
			_, err := fmt.Fprintf(env.stdout, "personio-entra %s (revision %s, %s)\n", b.Version, b.Revision, b.GoVersion)
			return err
		},
	})
}
