package main

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestReadBuildInfo(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	tests := []struct {
		name             string
		linkVer, linkRev string
		bi               *debug.BuildInfo
		ok               bool
		want             buildInfo
	}{
		{
			name: "no build info falls back to unknown and the runtime's Go version",
			want: buildInfo{Version: "unknown", Revision: "unknown", GoVersion: runtime.Version()},
		},
		{
			name: "devel module version is not a version",
			bi:   &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			ok:   true,
			want: buildInfo{Version: "unknown", Revision: "unknown", GoVersion: "go1.26.0"},
		},
		{
			name: "module version and clean VCS revision",
			bi: &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.4.0"},
				Settings: settings("vcs.revision", "0123abc", "vcs.modified", "false")},
			ok:   true,
			want: buildInfo{Version: "v1.4.0", Revision: "0123abc", GoVersion: "go1.26.1"},
		},
		{
			name: "modified working tree marks the revision dirty",
			bi: &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.4.1-0.20261127-0123abc+dirty"},
				Settings: settings("vcs.revision", "0123abc", "vcs.modified", "true")},
			ok:   true,
			want: buildInfo{Version: "v1.4.1-0.20261127-0123abc+dirty", Revision: "0123abc-dirty", GoVersion: "go1.26.1"},
		},
		{
			name:    "link-time values win over embedded data",
			linkVer: "v2.0.0", linkRev: "feedbee",
			bi: &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "(devel)"},
				Settings: settings("vcs.revision", "0123abc")},
			ok:   true,
			want: buildInfo{Version: "v2.0.0", Revision: "feedbee", GoVersion: "go1.26.1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := readBuildInfo(tc.linkVer, tc.linkRev, tc.bi, tc.ok); got != tc.want {
				t.Errorf("readBuildInfo() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The gauge is registered on the default registry with value 1 and the
// labels of the running binary.
func TestBuildInfoGaugeExported(t *testing.T) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatalf("gather default registry: %v", err)
	}
	want := currentBuildInfo()
	for _, mf := range mfs {
		if mf.GetName() != "personio_entra_build_info" {
			continue
		}
		if n := len(mf.GetMetric()); n != 1 {
			t.Fatalf("personio_entra_build_info has %d series, want 1", n)
		}
		m := mf.GetMetric()[0]
		if v := m.GetGauge().GetValue(); v != 1 {
			t.Errorf("value = %v, want 1", v)
		}
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		wantLabels := map[string]string{"version": want.Version, "revision": want.Revision, "goversion": want.GoVersion}
		for k, v := range wantLabels {
			if labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, labels[k], v)
			}
		}
		if len(labels) != len(wantLabels) {
			t.Errorf("labels = %v, want exactly %v", labels, wantLabels)
		}
		return
	}
	t.Fatal("personio_entra_build_info not found in the default registry")
}

func TestVersionCommand(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
	}{
		{name: "prints version line", args: []string{"version"}, wantCode: 0, wantOut: "personio-entra " + currentBuildInfo().Version},
		{name: "rejects arguments", args: []string{"version", "extra"}, wantCode: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			env := &environment{getenv: func(string) string { return "" }, stdout: &out, stderr: &errOut}
			if code := runMain(context.Background(), env, tc.args); code != tc.wantCode {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tc.wantCode, errOut.String())
			}
			if !strings.HasPrefix(out.String(), tc.wantOut) {
				t.Errorf("stdout %q, want prefix %q", out.String(), tc.wantOut)
			}
			if tc.wantCode == 0 && !strings.Contains(out.String(), runtime.Version()) && !strings.Contains(out.String(), "go1.") {
				t.Errorf("stdout %q does not name the Go version", out.String())
			}
		})
	}
}
