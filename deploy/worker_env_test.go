package deploy

import (
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// workerNotPassed are the settings of the README configuration table that
// a deployment deliberately does not give the workers, with the reason.
// Everything else in the table must reach them.
var workerNotPassed = map[string]map[string]string{
	"compose": {
		"PERSONIO_API_URL":                   "the default (https://api.personio.de) is Personio's API",
		"PERSONIO_WEBHOOK_INSECURE_NO_TOKEN": "the receiver's, and never in production",
		"PERSONIO_WRITE_BACK_EMAIL":          "off by default; needs personio:persons:write (add it in an override)",
		"ENTRA_CLIENT_CERTIFICATE":           "a file to mount (add it in an override); the Compose file passes ENTRA_CLIENT_SECRET",
		"ENTRA_AUTHORITY_HOST":               "other clouds or a simulator; ENTRA_CLOUD names the national clouds",
		"GRAPH_API_URL":                      "other clouds or a simulator; ENTRA_CLOUD names the national clouds",
		"ENTRA_RECORD_LEAVE_DATE":            "off by default; needs User-LifeCycleInfo.ReadWrite.All (add it in an override)",
		"ENTRA_ROLE_ASSIGNABLE_GROUPS":       "off by default; needs RoleManagement.ReadWrite.Directory (add it in an override)",
		"NATS_CREDS":                         "the Compose NATS cluster runs without client authentication",
		"DATA_DIR":                           "the embedded JetStream's; the Compose file runs a NATS cluster (NATS_URL)",
		"CONSOLE_SECURE_COOKIE":              "the console is the receiver's, published on loopback only",
	},
	"kubernetes": {
		"PERSONIO_WEBHOOK_TOKEN":             "the receiver's (webhooks)",
		"PERSONIO_WEBHOOK_INSECURE_NO_TOKEN": "the receiver's, and never in production",
		"PERSONIO_WRITE_BACK_EMAIL":          "off by default; needs personio:persons:write (add it in an overlay)",
		"ENTRA_CLIENT_CERTIFICATE":           "a Secret volume to mount (add it in an overlay); the base uses workload identity or ENTRA_CLIENT_SECRET",
		"ENTRA_AUTHORITY_HOST":               "other clouds or a simulator; ENTRA_CLOUD names the national clouds",
		"GRAPH_API_URL":                      "other clouds or a simulator; ENTRA_CLOUD names the national clouds",
		"ENTRA_RECORD_LEAVE_DATE":            "off by default; needs User-LifeCycleInfo.ReadWrite.All (add it in an overlay)",
		"ENTRA_ROLE_ASSIGNABLE_GROUPS":       "off by default; needs RoleManagement.ReadWrite.Directory (add it in an overlay)",
		"NATS_CREDS":                         "the NATS of nats-values.yaml runs without client authentication",
		"ADMIN_TOKEN":                        "the admin API and the console are the receiver's",
		"CONSOLE_SECURE_COOKIE":              "the console is the receiver's",
	},
}

// readmeSettings returns the variables the first column of the README's
// configuration table names.
func readmeSettings(t *testing.T) []string {
	t.Helper()
	readme := string(readFile(t, "../README.md"))
	_, table, ok := strings.Cut(readme, "\n## Configuration\n")
	if !ok {
		t.Fatal("README.md has no section \"## Configuration\"")
	}
	if end := strings.Index(table, "\n## "); end >= 0 {
		table = table[:end]
	}
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]+)`")
	seen := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(line, "|") {
			continue
		}
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			seen[m[1]] = true
		}
	}
	if len(seen) < 20 {
		t.Fatalf("README.md configuration table: found only %d variables (%v); is it still a table with the variables in the first column?", len(seen), slices.Sorted(maps.Keys(seen)))
	}
	return slices.Sorted(maps.Keys(seen))
}

// composeWorkerEnv is the environment of every Compose service that runs
// `work`, and the names they all share.
func composeWorkerEnv(t *testing.T) map[string]bool {
	t.Helper()
	var c map[string]any
	if err := yaml.Unmarshal(readFile(t, "compose/docker-compose.yaml"), &c); err != nil {
		t.Fatalf("compose/docker-compose.yaml: %v", err)
	}
	var env map[string]bool
	for name, s := range mapAt(c, "services") {
		if cmd := list(s, "command"); len(cmd) != 1 || cmd[0] != "work" {
			continue
		}
		names := map[string]bool{}
		for k := range mapAt(s, "environment") {
			names[k] = true
		}
		if env != nil && !maps.Equal(env, names) {
			t.Errorf("Compose worker %s has another environment than the other workers", name)
		}
		env = names
	}
	if env == nil {
		t.Fatal("compose/docker-compose.yaml: no service runs `work`")
	}
	return env
}

// kubernetesWorkerEnv is what the worker Deployment's container gets: its
// env entries and the keys of the ConfigMaps it takes whole (envFrom).
func kubernetesWorkerEnv(t *testing.T) map[string]bool {
	t.Helper()
	ms := baseManifests(t)
	configMaps := map[string]map[string]any{}
	for _, m := range ms {
		if m.kind() == "ConfigMap" {
			configMaps[m.name()] = mapAt(m.obj, "data")
		}
	}
	for _, m := range ms {
		if m.kind() != "Deployment" || m.name() != "personio-entra-worker" {
			continue
		}
		env := map[string]bool{}
		for _, c := range list(m.obj, "spec", "template", "spec", "containers") {
			for _, e := range list(c, "env") {
				env[str(e, "name")] = true
			}
			for _, ef := range list(c, "envFrom") {
				cm := str(ef, "configMapRef", "name")
				data, ok := configMaps[cm]
				if cm != "" && !ok {
					t.Errorf("worker envFrom ConfigMap %s is not in the base", cm)
				}
				for k := range data {
					env[k] = true
				}
			}
		}
		return env
	}
	t.Fatal("kubernetes: no Deployment personio-entra-worker")
	return nil
}

// Every setting the README's configuration table documents reaches the
// workers of each deployment (Compose and Kubernetes), or is listed in
// workerNotPassed with the reason; nothing reaches them that the table does
// not document. A setting added to the product and the README but not to
// the deployments fails here.
func TestWorkersGetEveryDocumentedSetting(t *testing.T) {
	documented := readmeSettings(t)
	for _, tc := range []struct {
		name string
		env  func(*testing.T) map[string]bool
	}{
		{"compose", composeWorkerEnv},
		{"kubernetes", kubernetesWorkerEnv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env(t)
			notPassed := workerNotPassed[tc.name]
			for _, v := range documented {
				_, deliberate := notPassed[v]
				switch {
				case env[v] && deliberate:
					t.Errorf("%s is passed to the workers but listed as not passed (%s): drop it from workerNotPassed", v, notPassed[v])
				case !env[v] && !deliberate:
					t.Errorf("%s (README configuration table) does not reach the workers: pass it (empty or commented where optional) or list it in workerNotPassed with the reason", v)
				}
			}
			for _, v := range slices.Sorted(maps.Keys(env)) {
				if !slices.Contains(documented, v) {
					t.Errorf("the workers get %s, which the README configuration table does not document", v)
				}
			}
			for _, v := range slices.Sorted(maps.Keys(notPassed)) {
				if !slices.Contains(documented, v) {
					t.Errorf("workerNotPassed names %s, which the README configuration table does not document", v)
				}
			}
		})
	}
}
