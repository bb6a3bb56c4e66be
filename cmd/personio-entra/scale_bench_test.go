package main

// The scale benchmark: a complete sync of a large company with 200 managed
// groups, the worker in its own process, so its peak RSS (VmHWM) is the
// product's alone. It is skipped unless SCALE_BENCH=1:
//
//	SCALE_BENCH=1 SCALE_PEOPLE=50000 go test -run '^$' -bench BenchmarkScaleCompleteSync \
//	    -benchtime 1x -timeout 60m ./cmd/personio-entra

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/rules"
)

// scaleCohorts person_id-modulo groups and the 6 department groups make
// the 200 managed groups of the scale rules.
const scaleCohorts = 194

// scaleRules is deploy/rules.example.yaml with 200 managed groups (6
// departments, 194 cohorts: everyone in scope is in exactly two) and a UPN
// list that cannot run out for the generated company's repeating names.
func scaleRules(tb testing.TB) []byte {
	tb.Helper()
	out := benchRulesWith(tb, scaleCohorts, func(i int) string { return fmt.Sprintf("Cohort %03d", i) })
	rs, err := rules.LoadBytes("scale-rules.yaml", out)
	if err != nil {
		tb.Fatalf("scale rules do not load: %v", err)
	}
	if n := len(rs.ManagedGroups()); n != 200 {
		tb.Fatalf("%d managed groups, want 200", n)
	}
	return out
}

// procHWMKB reads VmHWM (peak resident set size) of a process in kB.
func procHWMKB(pid int) (int, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// scaleCounts are the simulators' request counters at one instant.
type scaleCounts struct {
	graph, graphWrites int
	personio           int64
	byRoute            map[string]int
}

func (e *faultEnv) scaleCounts() scaleCounts {
	var g entratest.Counters
	if err := e.control(http.MethodGet, "/entra/requests", nil, &g); err != nil {
		e.t.Fatal(err)
	}
	var p struct {
		Requests int64 `json:"requests"`
	}
	if err := e.control(http.MethodGet, "/personio/requests", nil, &p); err != nil {
		e.t.Fatal(err)
	}
	c := scaleCounts{graph: g.Total, graphWrites: g.Writes, personio: p.Requests, byRoute: map[string]int{}}
	for k, v := range g.ByRoute {
		c.byRoute[k] = v
	}
	return c
}

// scaleSync runs one complete sync through the admin API (the answer comes
// when the sync is done) and waits for whatever it enqueued.
func (e *faultEnv) scaleSync() (provisioning.SyncReport, time.Duration) {
	req, err := http.NewRequest(http.MethodPost, e.workerURLs[0]+"/sync", bytes.NewReader(nil))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.adminToken)
	start := time.Now()
	resp, err := (&http.Client{Timeout: 30 * time.Minute}).Do(req)
	if err != nil {
		e.dumpLogs()
		e.t.Fatalf("POST /admin/sync: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		e.dumpLogs()
		e.t.Fatalf("POST /admin/sync: %d %s", resp.StatusCode, body)
	}
	var rep provisioning.SyncReport
	if err := json.Unmarshal(body, &rep); err != nil {
		e.t.Fatalf("sync report %s: %v", body, err)
	}
	if rep.Enqueued > 0 {
		e.drained(30 * time.Minute)
	}
	return rep, time.Since(start)
}

func BenchmarkScaleCompleteSync(b *testing.B) {
	if os.Getenv("SCALE_BENCH") != "1" {
		b.Skip("set SCALE_BENCH=1 (and SCALE_PEOPLE, default 50000) to run the scale benchmark")
	}
	people := 50_000
	if v := os.Getenv("SCALE_PEOPLE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("SCALE_PEOPLE=%q: want a positive number", v)
		}
		people = n
	}
	bins := buildFaultBinaries(b, b.TempDir())
	for range b.N {
		setup := time.Now()
		e := newFaultEnv(b, bins, faultEnvOptions{people: people, natsNodes: 1, workers: 1,
			rules: scaleRules(b), simArgs: []string{"--converged"}, simReady: 15 * time.Minute})
		b.Logf("%d people, converged tenant, NATS and one worker ready in %s", people, time.Since(setup).Round(time.Second))
		worker := e.workers[0]
		pid := worker.cmd.Process.Pid

		c0 := e.scaleCounts()
		first, firstWall := e.scaleSync()
		c1 := e.scaleCounts()
		hwm1, err := procHWMKB(pid)
		if err != nil {
			b.Fatal(err)
		}
		second, secondWall := e.scaleSync()
		c2 := e.scaleCounts()
		hwm2, err := procHWMKB(pid)
		if err != nil {
			b.Fatal(err)
		}
		for i, r := range []provisioning.SyncReport{first, second} {
			r.Plans = nil
			j, _ := json.Marshal(r)
			b.Logf("sync %d report: %s", i+1, j)
		}
		b.Logf("graph routes, sync 1: %v", routeDelta(c0.byRoute, c1.byRoute))
		b.Logf("graph routes, sync 2: %v", routeDelta(c1.byRoute, c2.byRoute))
		b.Logf("scale %d people, 200 groups, revision %s: first complete sync (adoption) %s wall (report %s), %d Graph + %d Personio requests, "+
			"%d Graph writes, %d adopted, %d enqueued; second %s wall (report %s), %d Graph + %d Personio requests, %d drifting; worker VmHWM %.0f MB after the first, %.0f MB after the second",
			people, faultRevision, firstWall.Round(time.Millisecond), first.Duration, c1.graph-c0.graph, c1.personio-c0.personio,
			c1.graphWrites-c0.graphWrites, first.Adopted, first.Enqueued, secondWall.Round(time.Millisecond), second.Duration, c2.graph-c1.graph, c2.personio-c1.personio,
			second.Drifting, float64(hwm1)/1024, float64(hwm2)/1024)
		b.ReportMetric(firstWall.Seconds(), "first-sync-s")
		b.ReportMetric(secondWall.Seconds(), "second-sync-s")
		b.ReportMetric(float64(c1.graph-c0.graph), "first-graph-req")
		b.ReportMetric(float64(c1.personio-c0.personio), "first-personio-req")
		b.ReportMetric(float64(c2.graph-c1.graph), "second-graph-req")
		b.ReportMetric(float64(c2.personio-c1.personio), "second-personio-req")
		b.ReportMetric(float64(hwm2)/1024, "worker-peak-rss-MB")
		e.stopAll()
	}
}

func routeDelta(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}
