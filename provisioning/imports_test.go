package provisioning_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/personio-entra/personio-entra"

// listDeps returns, for each package of the module, its dependencies
// (transitive, as `go list -deps` computes them for the given tags).
func listDeps(t *testing.T, tags string, patterns ...string) map[string][]string {
	t.Helper()
	args := []string{"list", "-json=ImportPath,Deps,Imports"}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, patterns...)...)
	cmd.Dir = ".."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deps := map[string][]string{}
	dec := json.NewDecoder(out)
	for {
		var p struct {
			ImportPath string
			Deps       []string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		deps[p.ImportPath] = p.Deps
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if len(deps) == 0 {
		t.Fatal("go list found no packages")
	}
	return deps
}

// graphSDKOwner is the GitHub owner of the Microsoft Graph SDK modules
// (the SDK, its core and its models); every package under it counts.
const graphSDKOwner = "github.com/microsoftgraph/"

func isGraphSDK(pkg string) bool { return strings.HasPrefix(pkg, graphSDKOwner) }

// The layout docs/architecture.md promises: the rules and the receiver
// know no adapter, and only provisioning/entra links the Graph SDK.
func TestImportBoundaries(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	deps := listDeps(t, "", "./...")
	adapters := []string{module + "/provisioning/personio", module + "/provisioning/entra"}
	isAdapter := func(d string) bool {
		for _, a := range adapters {
			if d == a || strings.HasPrefix(d, a+"/") {
				return true
			}
		}
		return false
	}
	for pkg, ds := range deps {
		for _, d := range ds {
			switch {
			case (strings.HasPrefix(pkg, module+"/rules") || strings.HasPrefix(pkg, module+"/handlers")) && isAdapter(d):
				t.Errorf("%s depends on the adapter %s", pkg, d)
			case isGraphSDK(d) && pkg != module+"/provisioning/entra" && !strings.HasPrefix(pkg, module+"/cmd/"):
				t.Errorf("%s links the Graph SDK (%s); only provisioning/entra may", pkg, d)
			case pkg == module+"/provisioning" && isAdapter(d):
				t.Errorf("the engine depends on the adapter %s", d)
			}
		}
	}
	for _, must := range []string{module + "/rules", module + "/handlers", module + "/provisioning", module + "/provisioning/entra"} {
		if _, ok := deps[must]; !ok {
			t.Errorf("go list did not report %s", must)
		}
	}
	if !slices.ContainsFunc(deps[module+"/provisioning/entra"], isGraphSDK) {
		t.Error("provisioning/entra does not link the Graph SDK: the check above would pass vacuously")
	}
}

// The production binary (built with -tags nosimulators, as deploy/Dockerfile
// does) carries no simulator.
func TestProductionBinaryCarriesNoSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	bin := module + "/cmd/personio-entra"
	for _, tc := range []struct {
		tags string
		want bool
	}{{"", true}, {"nosimulators", false}} {
		deps := listDeps(t, tc.tags, "./cmd/personio-entra")[bin]
		has := slices.ContainsFunc(deps, func(d string) bool {
			return strings.HasSuffix(d, "/entratest") || strings.HasSuffix(d, "/personiotest") || strings.HasSuffix(d, "/devstack")
		})
		if has != tc.want {
			t.Errorf("tags %q: binary links the simulators = %t, want %t", tc.tags, has, tc.want)
		}
	}
}
