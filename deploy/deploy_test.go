package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.yaml.in/yaml/v3"

	"github.com/personio-entra/personio-entra/queue"
	"github.com/personio-entra/personio-entra/rules"
)

// ---------------------------------------------------------------------------
// Metrics exported by the code

type metricDef struct {
	kind   string // counter, gauge, histogram, summary
	labels []string
	file   string
}

var optsKinds = map[string]string{
	"CounterOpts": "counter", "GaugeOpts": "gauge", "HistogramOpts": "histogram", "SummaryOpts": "summary",
}

// exportedMetrics scans the non-test Go sources of the module for
// prometheus.{Counter,Gauge,Histogram,Summary}Opts literals and returns the
// full metric names (Namespace_Subsystem_Name) with their kind and the label
// names passed next to them (…Vec constructors).
func exportedMetrics(t *testing.T) map[string]metricDef {
	t.Helper()
	root := filepath.Join("..")
	out := map[string]metricDef{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "vendor", "testdata", "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			// A file another package is in the middle of writing must not
			// hide the metrics of every other file.
			t.Logf("skipping %s: %v", path, err)
			return nil
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			lit, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			sel, ok := lit.Type.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			kind, ok := optsKinds[sel.Sel.Name]
			if !ok {
				return true
			}
			parts := map[string]string{}
			for _, e := range lit.Elts {
				kv, ok := e.(*ast.KeyValueExpr)
				if !ok {
					continue
				}
				key, ok := kv.Key.(*ast.Ident)
				if !ok {
					continue
				}
				if bl, ok := kv.Value.(*ast.BasicLit); ok && bl.Kind == token.STRING {
					if s, err := strconv.Unquote(bl.Value); err == nil {
						parts[key.Name] = s
					}
				}
			}
			var name []string
			for _, k := range []string{"Namespace", "Subsystem", "Name"} {
				if parts[k] != "" {
					name = append(name, parts[k])
				}
			}
			full := strings.Join(name, "_")
			if !strings.HasPrefix(full, "personio_entra_") {
				return true
			}
			var labels []string
			if len(call.Args) > 1 {
				if ll, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, e := range ll.Elts {
						if bl, ok := e.(*ast.BasicLit); ok && bl.Kind == token.STRING {
							s, _ := strconv.Unquote(bl.Value)
							labels = append(labels, s)
						}
					}
				}
			}
			out[full] = metricDef{kind: kind, labels: labels, file: path}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatalf("scan Go sources under %s: %v", root, err)
	}
	return out
}

// ---------------------------------------------------------------------------
// PromQL used by the dashboard and the alerts

type query struct {
	where string // file and panel or alert
	expr  string
}

func dashboardQueries(t *testing.T) []query {
	t.Helper()
	data := readFile(t, "grafana/personio-entra.json")
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana/personio-entra.json: %v", err)
	}
	var qs []query
	var walk func(title string, v any)
	walk = func(title string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["title"].(string); ok {
				title = s
			}
			if e, ok := v["expr"].(string); ok {
				qs = append(qs, query{where: "dashboard panel " + strconv.Quote(title), expr: e})
			}
			for _, c := range v {
				walk(title, c)
			}
		case []any:
			for _, c := range v {
				walk(title, c)
			}
		}
	}
	walk("", dash["panels"])
	if len(qs) == 0 {
		t.Fatal("grafana/personio-entra.json: no panel queries found")
	}
	return qs
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func alertRules(t *testing.T) ruleFile {
	t.Helper()
	var rf ruleFile
	if err := yaml.Unmarshal(readFile(t, "prometheus/alerts.yaml"), &rf); err != nil {
		t.Fatalf("prometheus/alerts.yaml: %v", err)
	}
	return rf
}

func alertQueries(t *testing.T) []query {
	var qs []query
	for _, g := range alertRules(t).Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: "alert " + r.Alert, expr: r.Expr})
		}
	}
	return qs
}

var (
	metricRef  = regexp.MustCompile(`\b(personio_entra_[a-zA-Z0-9_]+)(\{[^}]*\})?`)
	matcherRef = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	byRef      = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	// Target labels Prometheus and the operator add to every series.
	targetLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint"}
)

// resolveMetric maps a series name in PromQL to the exported metric:
// histograms expose _bucket, _sum and _count; summaries _sum and _count.
func resolveMetric(name string, exported map[string]metricDef) (string, metricDef, bool) {
	if d, ok := exported[name]; ok {
		return name, d, true
	}
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suf)
		if !ok {
			continue
		}
		d, ok := exported[base]
		if !ok {
			continue
		}
		if d.kind == "histogram" || (d.kind == "summary" && suf != "_bucket") {
			return base, d, true
		}
	}
	return "", metricDef{}, false
}

// checkQueries reports every personio_entra_* series the queries use that
// the code does not export, and label names the metric does not have.
func checkQueries(qs []query, exported map[string]metricDef) (used map[string]bool, problems []string) {
	used = map[string]bool{}
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	for _, q := range qs {
		var labelsInExpr []string
		for _, m := range metricRef.FindAllStringSubmatch(q.expr, -1) {
			base, def, ok := resolveMetric(m[1], exported)
			if !ok {
				bad("%s uses %s, which no Go source exports (no Name: %q)", q.where, m[1], m[1])
				continue
			}
			used[base] = true
			allowed := append(slices.Clone(def.labels), targetLabels...)
			if strings.HasSuffix(m[1], "_bucket") {
				allowed = append(allowed, "le")
			}
			labelsInExpr = append(labelsInExpr, allowed...)
			for _, lm := range matcherRef.FindAllStringSubmatch(m[2], -1) {
				if !slices.Contains(allowed, lm[1]) {
					bad("%s: %s has no label %q (labels: %v)", q.where, base, lm[1], def.labels)
				}
			}
		}
		// Grouping labels must exist on one of the personio_entra metrics of
		// the expression (other exporters' metrics are not checked).
		if strings.Contains(q.expr, "jetstream_") || len(labelsInExpr) == 0 {
			continue
		}
		for _, b := range byRef.FindAllStringSubmatch(q.expr, -1) {
			for _, l := range strings.Split(b[1], ",") {
				if l = strings.TrimSpace(l); l != "" && !slices.Contains(labelsInExpr, l) {
					bad("%s groups by %q, a label none of its metrics has", q.where, l)
				}
			}
		}
	}
	return used, problems
}

func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	// The packages that define the core metrics must have been found, or the
	// scan itself is broken.
	for _, must := range []string{"personio_entra_reconciles_total", "personio_entra_queue_pending_messages", "personio_entra_build_info"} {
		if _, ok := exported[must]; !ok {
			t.Fatalf("metric scan found no %s: scan of the Go sources is broken (found %d metrics)", must, len(exported))
		}
	}
	t.Run("dashboard", func(t *testing.T) {
		used, problems := checkQueries(dashboardQueries(t), exported)
		for _, p := range problems {
			t.Error(p)
		}
		// The dashboard sections the operations guide promises.
		for _, m := range []string{
			"personio_entra_webhook_requests_total", "personio_entra_webhook_request_duration_seconds",
			"personio_entra_queue_pending_messages", "personio_entra_dead_letter_messages",
			"personio_entra_reconciles_total", "personio_entra_reconcile_duration_seconds",
			"personio_entra_graph_throttled_total", "personio_entra_graph_retry_wait_seconds_total",
			"personio_entra_changes_total", "personio_entra_guard_trips_total", "personio_entra_pending_approvals",
			"personio_entra_full_sync_duration_seconds", "personio_entra_full_sync_drift_employees",
			"personio_entra_full_sync_last_success_timestamp_seconds",
		} {
			if !used[m] {
				t.Errorf("dashboard has no panel for %s", m)
			}
		}
	})
	t.Run("alerts", func(t *testing.T) {
		_, problems := checkQueries(alertQueries(t), exported)
		for _, p := range problems {
			t.Error(p)
		}
	})
}

// The checker itself must reject what it is meant to reject.
func TestCheckQueriesRejects(t *testing.T) {
	exported := map[string]metricDef{
		"personio_entra_x_total":           {kind: "counter", labels: []string{"outcome"}},
		"personio_entra_y_seconds":         {kind: "histogram", labels: []string{"operation"}},
		"personio_entra_z_pending_objects": {kind: "gauge"},
	}
	tests := []struct {
		expr    string
		wantErr bool
	}{
		{`sum(rate(personio_entra_x_total{outcome="a"}[5m]))`, false},
		{`histogram_quantile(0.99, sum by (le, operation) (rate(personio_entra_y_seconds_bucket[5m])))`, false},
		{`personio_entra_y_seconds_count / personio_entra_y_seconds_sum`, false},
		{`up{job="x"} == 0 and personio_entra_z_pending_objects{instance="a"} > 0`, false},
		{`rate(personio_entra_missing_total[5m])`, true},
		{`personio_entra_x_total_bucket`, true},
		{`personio_entra_z_pending_objects_count`, true},
		{`personio_entra_x_total{status="500"}`, true},
		{`sum by (status) (rate(personio_entra_x_total[5m]))`, true},
		{`personio_entra_x_total{le="1"}`, true},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			_, problems := checkQueries([]query{{where: "case", expr: tc.expr}}, exported)
			if got := len(problems) > 0; got != tc.wantErr {
				t.Errorf("checkQueries(%q) problems = %v, want problems: %v", tc.expr, problems, tc.wantErr)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// promtool

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not found in PATH but CI=true: run deploy/ci-prereqs.sh first (%v)", err)
		}
		t.Skip("promtool not found: install it with deploy/ci-prereqs.sh (Debian package prometheus) to check the rules")
	}
	return p
}

func runPromtool(t *testing.T, bin, dir string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
}

func TestPromtool(t *testing.T) {
	bin := promtool(t)
	t.Run("check rules", func(t *testing.T) { runPromtool(t, bin, "prometheus", "check", "rules", "alerts.yaml") })
	t.Run("test rules", func(t *testing.T) { runPromtool(t, bin, "prometheus", "test", "rules", "alerts_test.yaml") })
	t.Run("check config", func(t *testing.T) {
		runPromtool(t, bin, "prometheus", "check", "config", "--syntax-only", "prometheus.yml")
	})
	// Grafana queries are PromQL too: check their syntax by wrapping them in
	// recording rules, with Grafana's variables replaced.
	t.Run("dashboard query syntax", func(t *testing.T) {
		repl := strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$__interval", "1m")
		var b strings.Builder
		b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
		for i, q := range dashboardQueries(t) {
			if strings.Contains(q.expr, "$") {
				q.expr = repl.Replace(q.expr)
			}
			if strings.Contains(q.expr, "$") {
				t.Errorf("%s: unknown Grafana variable in %q", q.where, q.expr)
			}
			e, _ := json.Marshal(q.expr)
			fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", i, e)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "dashboard.rules.yaml"), []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		runPromtool(t, bin, dir, "check", "rules", "dashboard.rules.yaml")
	})
}

func TestAlertsHaveRunbooks(t *testing.T) {
	rf := alertRules(t)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if len(strings.Fields(r.Annotations["runbook"])) < 12 {
				t.Errorf("alert %s: runbook annotation %q is missing or too short to say what to check and do", r.Alert, r.Annotations["runbook"])
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("alert %s: no summary", r.Alert)
			}
			switch r.Labels["severity"] {
			case "critical", "warning", "info":
			default:
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
			}
		}
	}
	// The alerts the operations guide documents.
	for _, a := range []string{
		"PersonioEntraWebhookUnavailable", "PersonioEntraWebhooksStopped", "PersonioEntraQueueBacklogGrowing",
		"PersonioEntraDeadLetters", "PersonioEntraReconcileErrors", "PersonioEntraGraphThrottled",
		"PersonioEntraFullSyncStale", "PersonioEntraGuardTripped", "PersonioEntraApprovalsPending", "PersonioEntraDown",
		"PersonioEntraSourceCollapsed", "PersonioEntraUnownedAccounts", "PersonioEntraQueueHeartbeatsLost",
	} {
		if !seen[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

// ---------------------------------------------------------------------------
// Kubernetes

type manifest struct {
	file string
	obj  map[string]any
}

func (m manifest) kind() string { return str(m.obj, "kind") }
func (m manifest) name() string { return str(m.obj, "metadata", "name") }
func (m manifest) String() string {
	return fmt.Sprintf("%s %s/%s", m.file, m.kind(), m.name())
}

func decodeDocs(t *testing.T, file string, data []byte) []manifest {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []manifest
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if obj == nil {
			continue
		}
		if str(obj, "apiVersion") == "" || str(obj, "kind") == "" || str(obj, "metadata", "name") == "" {
			t.Errorf("%s: document without apiVersion, kind or metadata.name", file)
		}
		out = append(out, manifest{file: file, obj: obj})
	}
	return out
}

func kustomization(t *testing.T) map[string]any {
	t.Helper()
	var k map[string]any
	if err := yaml.Unmarshal(readFile(t, "kubernetes/kustomization.yaml"), &k); err != nil {
		t.Fatalf("kubernetes/kustomization.yaml: %v", err)
	}
	return k
}

// baseManifests reads the files the kustomization lists.
func baseManifests(t *testing.T) []manifest {
	t.Helper()
	var out []manifest
	for _, r := range list(kustomization(t), "resources") {
		f := r.(string)
		out = append(out, decodeDocs(t, f, readFile(t, filepath.Join("kubernetes", f)))...)
	}
	return out
}

// renderedManifests runs `kubectl kustomize` when kubectl is installed, so
// the checks also see the generated ConfigMap and the resolved image.
func renderedManifests(t *testing.T) []manifest {
	t.Helper()
	bin, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not found: the kustomize rendering is not checked (the source manifests still are)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "kustomize", "kubernetes")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize kubernetes: %v\n%s", err, stderr.String())
	}
	return decodeDocs(t, "kustomize output", out)
}

func TestKustomizationFiles(t *testing.T) {
	k := kustomization(t)
	listed := map[string]bool{}
	for _, r := range list(k, "resources") {
		f, ok := r.(string)
		if !ok {
			t.Fatalf("kustomization resources: %v is not a file name", r)
		}
		listed[f] = true
		if _, err := os.Stat(filepath.Join("kubernetes", f)); err != nil {
			t.Errorf("kustomization lists %s: %v", f, err)
		}
	}
	for _, g := range list(k, "configMapGenerator") {
		for _, f := range list(g.(map[string]any), "files") {
			name := f.(string)
			if _, after, ok := strings.Cut(name, "="); ok {
				name = after
			}
			if _, err := os.Stat(filepath.Join("kubernetes", name)); err != nil {
				t.Errorf("configMapGenerator file %s: %v", name, err)
			}
		}
	}
	// Every manifest in the directory is used (nats-values.yaml is Helm
	// input, rules.yaml a generator input).
	entries, err := os.ReadDir("kubernetes")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".yaml") || n == "kustomization.yaml" || n == "nats-values.yaml" || n == "rules.yaml" {
			continue
		}
		if !listed[n] {
			t.Errorf("kubernetes/%s is not listed in kustomization.yaml resources", n)
		}
	}
	// The rules file in the ConfigMap must be a valid rules file.
	if _, err := rules.Load(filepath.Join("kubernetes", "rules.yaml")); err != nil {
		t.Errorf("kubernetes/rules.yaml is not a valid rules file: %v", err)
	}
}

func TestKubernetesManifests(t *testing.T) {
	t.Run("source", func(t *testing.T) { checkManifests(t, baseManifests(t), false) })
	t.Run("rendered", func(t *testing.T) { checkManifests(t, renderedManifests(t), true) })
}

// secretName matches the settings that are secrets (a Slack or Teams
// webhook URL carries its credential).
var secretName = regexp.MustCompile(`(_SECRET|_TOKEN|PASSWORD|_KEY)$|^NOTIFY_WEBHOOK_URL$`)

func checkManifests(t *testing.T, ms []manifest, rendered bool) {
	byKind := map[string][]manifest{}
	for _, m := range ms {
		byKind[m.kind()] = append(byKind[m.kind()], m)
	}
	if len(byKind["Secret"]) > 0 {
		t.Errorf("the base must not contain Secrets (secrets by reference only): %v", byKind["Secret"])
	}
	for _, cm := range byKind["ConfigMap"] {
		for k := range mapAt(cm.obj, "data") {
			if secretName.MatchString(k) {
				t.Errorf("%v: key %s belongs in a Secret, not a ConfigMap", cm, k)
			}
		}
	}

	images := map[string][]string{}
	deployments := map[string]manifest{}
	var workerSA string
	for _, d := range byKind["Deployment"] {
		deployments[d.name()] = d
		spec := mapAt(d.obj, "spec", "template", "spec")
		pod := mapAt(spec, "securityContext")
		if pod["runAsNonRoot"] != true {
			t.Errorf("%v: pod securityContext.runAsNonRoot is not true", d)
		}
		if str(pod, "seccompProfile", "type") != "RuntimeDefault" {
			t.Errorf("%v: pod seccompProfile is not RuntimeDefault", d)
		}
		containers := list(spec, "containers")
		if len(containers) == 0 {
			t.Errorf("%v: no containers", d)
		}
		for _, c := range append(containers, list(spec, "initContainers")...) {
			c := c.(map[string]any)
			where := fmt.Sprintf("%v container %s", d, str(c, "name"))
			images[str(c, "image")] = append(images[str(c, "image")], where)
			sc := mapAt(c, "securityContext")
			if sc["runAsNonRoot"] != true {
				t.Errorf("%s: securityContext.runAsNonRoot is not true", where)
			}
			if sc["readOnlyRootFilesystem"] != true {
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			}
			if sc["allowPrivilegeEscalation"] != false {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			if !slices.Contains(list(sc, "capabilities", "drop"), any("ALL")) {
				t.Errorf("%s: capabilities.drop does not contain ALL", where)
			}
			for _, section := range []string{"requests", "limits"} {
				r := mapAt(c, "resources", section)
				if r["memory"] == nil || (section == "requests" && r["cpu"] == nil) {
					t.Errorf("%s: resources.%s must set memory (and cpu for requests): %v", where, section, r)
				}
			}
			for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
				g := mapAt(c, probe, "httpGet")
				if str(g, "path") != path || fmt.Sprint(g["port"]) != "9090" {
					t.Errorf("%s: %s is %v, want httpGet %s on port 9090", where, probe, g, path)
				}
			}
			for _, e := range list(c, "env") {
				e := e.(map[string]any)
				name := str(e, "name")
				if !secretName.MatchString(name) {
					continue
				}
				if _, literal := e["value"]; literal {
					t.Errorf("%s: env %s has a literal value; use valueFrom.secretKeyRef", where, name)
				}
				if str(e, "valueFrom", "secretKeyRef", "name") == "" || str(e, "valueFrom", "secretKeyRef", "key") == "" {
					t.Errorf("%s: env %s does not come from a secretKeyRef", where, name)
				}
			}
			for _, ef := range list(c, "envFrom") {
				if n := str(ef.(map[string]any), "configMapRef", "name"); n != "" && !rendered {
					found := false
					for _, cm := range byKind["ConfigMap"] {
						found = found || cm.name() == n
					}
					if !found {
						t.Errorf("%s: envFrom ConfigMap %s is not in the base", where, n)
					}
				}
			}
		}
		if str(d.obj, "spec", "template", "metadata", "labels", "app.kubernetes.io/component") == "worker" {
			workerSA = str(spec, "serviceAccountName")
			if str(d.obj, "spec", "template", "metadata", "labels", "azure.workload.identity/use") != "true" {
				t.Errorf("%v: worker pods need the label azure.workload.identity/use: \"true\"", d)
			}
		}
	}
	if len(images) != 1 {
		t.Errorf("containers use %d different images, want one: %v", len(images), images)
	}
	if rendered {
		for img := range images {
			if !strings.Contains(img, "/") || !strings.Contains(img, ":") || strings.HasSuffix(img, ":latest") {
				t.Errorf("rendered image %q is not a registry path with a pinned tag", img)
			}
		}
	}

	recv, ok := deployments["personio-entra-receiver"]
	if !ok {
		t.Fatal("no Deployment personio-entra-receiver")
	}
	if n, _ := recv.obj["spec"].(map[string]any)["replicas"].(int); n < 2 {
		t.Errorf("receiver replicas = %v, want at least 2", recv.obj["spec"].(map[string]any)["replicas"])
	}
	if slices.Equal(list(recv.obj, "spec", "template", "spec", "containers", "0", "args"), nil) {
		t.Errorf("receiver has no args")
	}
	if _, ok := deployments["personio-entra-worker"]; !ok {
		t.Fatal("no Deployment personio-entra-worker")
	}

	// Workload identity: the worker's ServiceAccount names the app registration.
	foundSA := false
	for _, sa := range byKind["ServiceAccount"] {
		if sa.name() == workerSA {
			foundSA = true
			if str(sa.obj, "metadata", "annotations", "azure.workload.identity/client-id") == "" {
				t.Errorf("%v: no azure.workload.identity/client-id annotation", sa)
			}
		}
	}
	if !foundSA {
		t.Errorf("worker ServiceAccount %q is not in the base", workerSA)
	}

	// PodDisruptionBudgets cover both Deployments.
	covered := map[string]bool{}
	for _, pdb := range byKind["PodDisruptionBudget"] {
		sel := mapAt(pdb.obj, "spec", "selector", "matchLabels")
		for n, d := range deployments {
			if selects(sel, mapAt(d.obj, "spec", "template", "metadata", "labels")) {
				covered[n] = true
			}
		}
	}
	for n := range deployments {
		if !covered[n] {
			t.Errorf("Deployment %s has no PodDisruptionBudget", n)
		}
	}

	// NetworkPolicy: ingress only 8080 and 9090; egress only DNS, NATS, HTTPS.
	if len(byKind["NetworkPolicy"]) == 0 {
		t.Error("no NetworkPolicy")
	}
	for _, np := range byKind["NetworkPolicy"] {
		for _, dir := range []struct {
			key     string
			allowed []string
		}{{"ingress", []string{"8080", "9090"}}, {"egress", []string{"53", "4222", "443"}}} {
			for _, rule := range list(np.obj, "spec", dir.key) {
				ports := list(rule.(map[string]any), "ports")
				if len(ports) == 0 {
					t.Errorf("%v: %s rule without ports allows every port", np, dir.key)
				}
				for _, p := range ports {
					if port := fmt.Sprint(p.(map[string]any)["port"]); !slices.Contains(dir.allowed, port) {
						t.Errorf("%v: %s port %s not in %v", np, dir.key, port, dir.allowed)
					}
				}
			}
		}
	}

	// Ingress: TLS, only to the receiver's http port.
	for _, ing := range byKind["Ingress"] {
		if len(list(ing.obj, "spec", "tls")) == 0 {
			t.Errorf("%v: no TLS", ing)
		}
		for _, r := range list(ing.obj, "spec", "rules") {
			for _, p := range list(r.(map[string]any), "http", "paths") {
				if svc := str(p.(map[string]any), "backend", "service", "name"); svc != "personio-entra-receiver" {
					t.Errorf("%v: backend %s, want personio-entra-receiver", ing, svc)
				}
			}
		}
	}

	// ServiceMonitor ports exist on the selected Services.
	for _, sm := range byKind["ServiceMonitor"] {
		sel := mapAt(sm.obj, "spec", "selector", "matchLabels")
		for _, ep := range list(sm.obj, "spec", "endpoints") {
			port := str(ep.(map[string]any), "port")
			n := 0
			for _, svc := range byKind["Service"] {
				labels := mapAt(svc.obj, "metadata", "labels")
				if !rendered {
					// The kustomization adds the common labels.
					labels = mergeLabels(labels, map[string]any{"app.kubernetes.io/name": "personio-entra"})
				}
				if !selects(sel, labels) {
					continue
				}
				n++
				hasPort := false
				for _, p := range list(svc.obj, "spec", "ports") {
					hasPort = hasPort || str(p.(map[string]any), "name") == port
				}
				if !hasPort {
					t.Errorf("%v: Service %s has no port %q", sm, svc.name(), port)
				}
			}
			if n < 2 {
				t.Errorf("%v: selects %d Services, want receiver and worker", sm, n)
			}
		}
	}

	if rendered {
		checkRenderedRules(t, byKind["ConfigMap"], deployments)
	}
}

// checkRenderedRules: the generated rules ConfigMap is mounted where
// RULES_FILE points.
func checkRenderedRules(t *testing.T, cms []manifest, deployments map[string]manifest) {
	var rulesCM, cfg manifest
	for _, cm := range cms {
		switch {
		case strings.HasPrefix(cm.name(), "personio-entra-rules-"):
			rulesCM = cm
		case cm.name() == "personio-entra-config":
			cfg = cm
		}
	}
	if rulesCM.obj == nil || cfg.obj == nil {
		t.Fatalf("rendered output lacks the rules (%v) or config (%v) ConfigMap", rulesCM.obj != nil, cfg.obj != nil)
	}
	rulesFile := str(cfg.obj, "data", "RULES_FILE")
	for _, d := range deployments {
		spec := mapAt(d.obj, "spec", "template", "spec")
		vol := ""
		for _, v := range list(spec, "volumes") {
			if str(v.(map[string]any), "configMap", "name") == rulesCM.name() {
				vol = str(v.(map[string]any), "name")
			}
		}
		if vol == "" {
			t.Errorf("%v: does not mount the rules ConfigMap %s", d, rulesCM.name())
			continue
		}
		for _, c := range list(spec, "containers") {
			ok := false
			for _, vm := range list(c.(map[string]any), "volumeMounts") {
				vm := vm.(map[string]any)
				if str(vm, "name") == vol && filepath.Join(str(vm, "mountPath"), "rules.yaml") == rulesFile {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%v: RULES_FILE %s is not the mounted rules ConfigMap", d, rulesFile)
			}
		}
	}
}

// TestKEDATriggersMatchQueueConsumers opens a real queue (embedded NATS) with
// the ConfigMap's QUEUE_PARTITIONS and compares its consumers with the
// ScaledObject's triggers, so a renamed consumer or a changed partition count
// cannot leave the autoscaler watching nothing.
func TestKEDATriggersMatchQueueConsumers(t *testing.T) {
	ms := baseManifests(t)
	var cfg, so manifest
	for _, m := range ms {
		switch {
		case m.kind() == "ConfigMap" && m.name() == "personio-entra-config":
			cfg = m
		case m.kind() == "ScaledObject":
			so = m
		}
	}
	if cfg.obj == nil || so.obj == nil {
		t.Fatal("base lacks the ConfigMap personio-entra-config or the ScaledObject")
	}
	partitions, err := strconv.Atoi(str(cfg.obj, "data", "QUEUE_PARTITIONS"))
	if err != nil {
		t.Fatalf("QUEUE_PARTITIONS: %v", err)
	}
	if got := str(so.obj, "spec", "scaleTargetRef", "name"); got != "personio-entra-worker" {
		t.Errorf("ScaledObject targets %q, want personio-entra-worker", got)
	}
	if n, _ := mapAt(so.obj, "spec")["minReplicaCount"].(int); n < 1 {
		t.Errorf("minReplicaCount = %v: workers must never scale to zero (schedules and syncs need them)", n)
	}
	var triggers []string
	for _, tr := range list(so.obj, "spec", "triggers") {
		tr := tr.(map[string]any)
		md := mapAt(tr, "metadata")
		if str(tr, "type") != "nats-jetstream" {
			t.Errorf("trigger type %q, want nats-jetstream", str(tr, "type"))
		}
		if str(md, "stream") != queue.EventStream {
			t.Errorf("trigger stream %q, want %s", str(md, "stream"), queue.EventStream)
		}
		for _, k := range []string{"account", "natsServerMonitoringEndpoint", "lagThreshold"} {
			if str(md, k) == "" {
				t.Errorf("trigger for %s: no %s", str(md, "consumer"), k)
			}
		}
		triggers = append(triggers, str(md, "consumer"))
	}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := queue.StartEmbedded(t.TempDir(), logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := queue.ConnectEmbedded(s, "deploy-test", logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	q, err := queue.Open(ctx, nc, queue.Config{Partitions: partitions}, logger)
	if err != nil {
		t.Fatalf("open queue with %d partitions: %v", partitions, err)
	}
	t.Cleanup(q.Close)
	stream, err := q.JetStream().Stream(ctx, queue.EventStream)
	if err != nil {
		t.Fatal(err)
	}
	var consumers []string
	names := stream.ConsumerNames(ctx)
	for n := range names.Name() {
		consumers = append(consumers, n)
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(consumers)
	sort.Strings(triggers)
	if !slices.Equal(consumers, triggers) {
		t.Errorf("KEDA triggers do not match the queue's consumers for QUEUE_PARTITIONS=%d:\n triggers:  %v\n consumers: %v",
			partitions, triggers, consumers)
	}
}

// ---------------------------------------------------------------------------
// NATS

func TestNATSHelmValues(t *testing.T) {
	var v map[string]any
	if err := yaml.Unmarshal(readFile(t, "kubernetes/nats-values.yaml"), &v); err != nil {
		t.Fatalf("kubernetes/nats-values.yaml: %v", err)
	}
	checks := []struct {
		path []string
		want string
	}{
		{[]string{"config", "cluster", "enabled"}, "true"},
		{[]string{"config", "cluster", "replicas"}, "3"},
		{[]string{"config", "jetstream", "enabled"}, "true"},
		{[]string{"config", "jetstream", "fileStore", "enabled"}, "true"},
		{[]string{"config", "jetstream", "fileStore", "pvc", "enabled"}, "true"},
		{[]string{"config", "jetstream", "memoryStore", "enabled"}, "false"},
		{[]string{"config", "jetstream", "merge", "sync_interval"}, "always"},
	}
	for _, c := range checks {
		if got := fmt.Sprint(at(v, c.path...)); got != c.want {
			t.Errorf("nats-values.yaml %s = %s, want %s", strings.Join(c.path, "."), got, c.want)
		}
	}
	if str(v, "config", "jetstream", "fileStore", "pvc", "size") == "" {
		t.Error("nats-values.yaml: no PVC size for the JetStream file store")
	}
	// The app's streams are R3 on this cluster.
	var cfg map[string]any
	for _, m := range baseManifests(t) {
		if m.kind() == "ConfigMap" && m.name() == "personio-entra-config" {
			cfg = m.obj
		}
	}
	if got := str(cfg, "data", "QUEUE_REPLICAS"); got != fmt.Sprint(at(v, "config", "cluster", "replicas")) {
		t.Errorf("ConfigMap QUEUE_REPLICAS = %q, want the NATS cluster size %v", got, at(v, "config", "cluster", "replicas"))
	}
}

// The Compose NATS configuration is parsed by nats-server itself.
func TestComposeNATSConfig(t *testing.T) {
	for _, name := range []string{"nats-1", "nats-2", "nats-3"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("NATS_SERVER_NAME", name)
			o, err := server.ProcessConfigFile(filepath.Join("compose", "nats", "nats.conf"))
			if err != nil {
				t.Fatalf("nats-server cannot load compose/nats/nats.conf: %v", err)
			}
			if o.ServerName != name {
				t.Errorf("server_name = %q, want %q", o.ServerName, name)
			}
			if !o.JetStream || !o.SyncAlways || o.StoreDir != "/data" {
				t.Errorf("jetstream = %v, sync always = %v, store_dir = %q; want true, true, /data", o.JetStream, o.SyncAlways, o.StoreDir)
			}
			if o.Cluster.Name == "" || o.Cluster.Port != 6222 || len(o.Routes) != 3 {
				t.Errorf("cluster %q port %d with %d routes; want a named cluster on 6222 with 3 routes", o.Cluster.Name, o.Cluster.Port, len(o.Routes))
			}
			if o.HTTPPort != 8222 {
				t.Errorf("monitoring port %d, want 8222 (health checks and exporters)", o.HTTPPort)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// Compose

var composeVar = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::?[-?+][^}]*)?\}`)

func TestCompose(t *testing.T) {
	raw := readFile(t, "compose/docker-compose.yaml")
	var c map[string]any
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("compose/docker-compose.yaml: %v", err)
	}
	services := mapAt(c, "services")
	var nats, workers, receivers []string
	appImages := map[string]bool{}
	for name, s := range services {
		s := s.(map[string]any)
		img := str(s, "image")
		cmd := fmt.Sprint(s["command"])
		switch {
		case strings.HasPrefix(img, "nats:"):
			nats = append(nats, name)
			if !strings.HasPrefix(img, "nats:2.1") || strings.HasPrefix(img, "nats:2.10") || strings.HasPrefix(img, "nats:2.11") {
				t.Errorf("service %s: image %s, want nats 2.12 or newer (message schedules)", name, img)
			}
			hasVolume := false
			for _, v := range list(s, "volumes") {
				hasVolume = hasVolume || strings.HasSuffix(fmt.Sprint(v), ":/data")
			}
			if !hasVolume {
				t.Errorf("service %s: no volume for the JetStream store /data", name)
			}
		case cmd == "[work]":
			workers = append(workers, name)
		case cmd == "[serve]":
			receivers = append(receivers, name)
		}
		if cmd == "[work]" || cmd == "[serve]" {
			appImages[img] = true
			if s["read_only"] != true {
				t.Errorf("service %s: read_only is not true", name)
			}
			env := mapAt(s, "environment")
			for k, v := range env {
				if secretName.MatchString(k) && !composeVar.MatchString(fmt.Sprint(v)) {
					t.Errorf("service %s: %s has a literal value; take it from .env", name, k)
				}
			}
			if fmt.Sprint(env["QUEUE_REPLICAS"]) != "3" {
				t.Errorf("service %s: QUEUE_REPLICAS = %v, want 3 (three NATS nodes)", name, env["QUEUE_REPLICAS"])
			}
		}
		if _, ok := s["healthcheck"]; !ok && !strings.Contains(img, "nats-exporter") {
			t.Errorf("service %s: no healthcheck", name)
		}
		for _, v := range list(s, "volumes") {
			src, _, _ := strings.Cut(fmt.Sprint(v), ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
					t.Errorf("service %s mounts %s: %v", name, src, err)
				}
			}
		}
	}
	if len(nats) != 3 {
		t.Errorf("NATS services %v, want 3", nats)
	}
	if len(workers) < 2 {
		t.Errorf("worker services %v, want at least 2", workers)
	}
	if len(receivers) < 1 {
		t.Error("no receiver service (command serve)")
	}
	if len(appImages) != 1 {
		t.Errorf("receiver and workers use images %v, want one", appImages)
	}
	for _, s := range []string{"prometheus", "grafana"} {
		if _, ok := services[s]; !ok {
			t.Errorf("service %s missing", s)
		}
	}
	// Every variable the Compose file reads is documented in .env.example.
	example := string(readFile(t, "compose/.env.example"))
	for _, m := range composeVar.FindAllStringSubmatch(string(raw), -1) {
		if !regexp.MustCompile(`(?m)^` + m[1] + `=`).MatchString(example) {
			t.Errorf("compose uses ${%s} but compose/.env.example does not list it", m[1])
		}
	}
	for _, line := range strings.Split(example, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && secretName.MatchString(k) && strings.TrimSpace(v) != "" {
			t.Errorf(".env.example: %s has a value; leave secrets empty", k)
		}
	}
}

func TestDockerfile(t *testing.T) {
	df := string(readFile(t, "Dockerfile"))
	for _, want := range []string{
		"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w`, "--mount=type=cache,target=/go/pkg/mod",
		"--mount=type=cache,target=/root/.cache/go-build", "FROM gcr.io/distroless/static-debian12:nonroot",
		"USER 65532:65532", "EXPOSE 8080 9090", `ENTRYPOINT ["/personio-entra"]`, `CMD ["run"]`,
		"./cmd/personio-entra", "./deploy/healthprobe",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The packages it builds exist.
	for _, dir := range []string{"../cmd/personio-entra", "healthprobe"} {
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("Dockerfile builds %s: %v", dir, err)
		}
	}
	// The build context must keep what the build embeds.
	ignore := string(readFile(t, "Dockerfile.dockerignore"))
	for _, keep := range []string{"deploy/rules.example.yaml", "testdata"} {
		if strings.Contains(ignore, keep) {
			t.Errorf("Dockerfile.dockerignore excludes %s, which the binary embeds", keep)
		}
	}
}

// ---------------------------------------------------------------------------
// helpers

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read deploy/%s: %v", path, err)
	}
	return b
}

// at walks maps and lists (list indexes as decimal strings).
func at(v any, path ...string) any {
	for _, p := range path {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(c) {
				return nil
			}
			v = c[i]
		default:
			return nil
		}
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := at(v, path...).(string)
	return s
}

func mapAt(v any, path ...string) map[string]any {
	m, _ := at(v, path...).(map[string]any)
	return m
}

func list(v any, path ...string) []any {
	l, _ := at(v, path...).([]any)
	return l
}

func selects(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func mergeLabels(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
