package main

// Harness of the multi-process fault tests (fault_test.go behind the build
// tag "fault", faultshort_test.go in every run): it builds the binaries,
// starts NATS nodes, the simulators, receivers and workers as real processes
// on loopback, sends Personio deliveries, injects faults and checks the
// outcome (docs/jetstream.md#production-cluster).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/personio-entra/personio-entra/cmd/internal/devstack"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/queue"
)

// faultRevision is the commit the binaries were built from ("-dirty" when
// the working tree had changes).
var faultRevision = "unknown"

// faultBinaries are the executables the fault tests run.
type faultBinaries struct{ product, simulators, nats string }

// buildFaultBinaries builds personio-entra, cmd/simulators and nats-server
// (from the module graph) into dir.
func buildFaultBinaries(t testing.TB, dir string) faultBinaries {
	t.Helper()
	b := faultBinaries{
		product:    filepath.Join(dir, "personio-entra"),
		simulators: filepath.Join(dir, "simulators"),
		nats:       filepath.Join(dir, "nats-server"),
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		faultRevision = strings.TrimSpace(string(out))
	}
	for _, x := range []struct{ out, pkg string }{
		{b.product, "github.com/personio-entra/personio-entra/cmd/personio-entra"},
		{b.simulators, "github.com/personio-entra/personio-entra/cmd/simulators"},
		{b.nats, "github.com/nats-io/nats-server/v2"},
	} {
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", x.out, x.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", x.pkg, err, out)
		}
		t.Logf("built %s in %s", filepath.Base(x.out), time.Since(start).Round(time.Millisecond))
	}
	return b
}

// faultFreePort returns a loopback port nobody listens on right now.
func faultFreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a free loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is one child process that can be killed and started again with the
// same command line; its output is appended to a log file.
type proc struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	runs int
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("%s: already running", p.name)
	}
	f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("%s: open log: %w", p.name, err)
	}
	p.runs++
	fmt.Fprintf(f, "=== start %d at %s\n", p.runs, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: start %s: %w", p.name, p.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// signal sends sig and waits up to wait for the exit (then SIGKILL).
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd, p.done = nil, nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
}

// kill is a crash: SIGKILL, no chance to ack, nak or flush.
func (p *proc) kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

// stop is a graceful shutdown (SIGTERM, as Kubernetes sends).
func (p *proc) stop() { p.signal(syscall.SIGTERM, 40*time.Second) }

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// tail returns the last n lines of the process log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// simInfo is the ready line of cmd/simulators.
type simInfo = devstack.Ready

// faultEnv is one installation: simulators, NATS nodes, receivers, workers.
type faultEnv struct {
	t            testing.TB
	dir          string
	bins         faultBinaries
	sim          simInfo
	simProc      *proc
	natsNodes    []*proc
	natsURLs     []string
	receivers    []*proc
	receiverURLs []string
	workers      []*proc
	workerURLs   []string // admin API base URLs of the workers
	webhookToken string
	adminToken   string
	rulesFile    string
	replicas     int
	guard        []string
	http         *http.Client
}

type faultEnvOptions struct {
	people    int
	natsNodes int // 1 or 3
	receivers int
	workers   int
	// guard is extra safeguard configuration (GUARD_*=...); empty: a budget
	// no scenario of the load kind reaches.
	guard []string
	// rules replaces faultRules; simArgs are extra cmd/simulators flags;
	// simReady is how long the simulators may take to start (default 60 s).
	rules    []byte
	simArgs  []string
	simReady time.Duration
}

func newFaultEnv(t testing.TB, bins faultBinaries, o faultEnvOptions) *faultEnv {
	t.Helper()
	e := &faultEnv{
		t: t, dir: t.TempDir(), bins: bins, webhookToken: randomToken(), adminToken: randomToken(),
		replicas: min(o.natsNodes, 3), http: &http.Client{Timeout: 30 * time.Second}, guard: o.guard,
	}
	if len(e.guard) == 0 {
		e.guard = []string{"GUARD_MAX_CHANGES=100000"}
	}
	t.Cleanup(e.stopAll)
	e.rulesFile = filepath.Join(e.dir, "rules.yaml")
	if o.rules == nil {
		o.rules = faultRules()
	}
	if err := os.WriteFile(e.rulesFile, o.rules, 0o600); err != nil {
		t.Fatalf("write rules: %v", err)
	}
	e.startSimulators(o.people, o.simReady, o.simArgs...)
	e.startNATS(o.natsNodes)
	for i := range o.receivers {
		e.addReceiver(i)
	}
	for i := range o.workers {
		e.addWorker(i)
	}
	return e
}

// faultRules are the example rules with one more UPN candidate: a
// generated company repeats the sample's 54 names, so a thousand people
// exhaust "{first}.{last}{n}" (n = 2..9) and would be dead-lettered as
// permanent failures by design.
func faultRules() []byte {
	const from = `candidates: ["{first}.{last}", "{f}.{last}", "{first}.{last}{n}"]`
	const to = `candidates: ["{first}.{last}", "{f}.{last}", "{first}.{last}{n}", "{first}.{last}.{id}"]`
	if !bytes.Contains(deploy.RulesExample, []byte(from)) {
		panic("deploy/rules.example.yaml changed its UPN candidates; update faultRules")
	}
	return bytes.Replace(deploy.RulesExample, []byte(from), []byte(to), 1)
}

func baseEnv(dir string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}
}

func (e *faultEnv) startSimulators(people int, within time.Duration, extra ...string) {
	if within <= 0 {
		within = 60 * time.Second
	}
	t := e.t
	out := filepath.Join(e.dir, "simulators.ready")
	p := &proc{name: "simulators", bin: e.bins.simulators, logPath: filepath.Join(e.dir, "simulators.log"),
		args: append([]string{"--people", strconv.Itoa(people), "--dir", e.dir, "--rules", e.rulesFile, "--log-level", "warn"}, extra...),
		env:  baseEnv(e.dir)}
	// The ready line arrives on stdout: run through a shell-free pipe.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start simulators: %v", err)
	}
	w.Close()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	p.cmd, p.done, p.runs = cmd, done, 1
	e.simProc = p
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case line, ok := <-lines:
		if !ok {
			t.Fatalf("simulators exited before ready:\n%s", p.tail(30))
		}
		if err := json.Unmarshal([]byte(line), &e.sim); err != nil {
			t.Fatalf("simulators ready line %q: %v", line, err)
		}
		_ = os.WriteFile(out, []byte(line), 0o600)
	case <-time.After(within):
		t.Fatalf("simulators not ready within %s:\n%s", within, p.tail(30))
	}
}

func (e *faultEnv) startNATS(n int) {
	t := e.t
	clientPorts := make([]int, n)
	routePorts := make([]int, n)
	for i := range n {
		clientPorts[i], routePorts[i] = faultFreePort(t), faultFreePort(t)
	}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		store := filepath.Join(e.dir, "nats-"+name)
		// sync_interval always: an acknowledged publish survives a node
		// crash (docs/jetstream.md#durability).
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n",
			name, clientPorts[i], store)
		if n > 1 {
			conf += fmt.Sprintf("cluster {\n  name: fault\n  listen: 127.0.0.1:%d\n  routes: [%s]\n}\n", routePorts[i], strings.Join(routes, ", "))
		}
		cf := filepath.Join(e.dir, name+".conf")
		if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		p := &proc{name: "nats-" + name, bin: e.bins.nats, args: []string{"-c", cf}, env: baseEnv(e.dir),
			logPath: filepath.Join(e.dir, "nats-"+name+".log")}
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		e.natsNodes = append(e.natsNodes, p)
		e.natsURLs = append(e.natsURLs, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	// Until a meta leader exists JetStream API calls get no answer
	// (docs/jetstream.md#production-cluster): poll AccountInfo with short
	// timeouts.
	e.eventually("JetStream ready", 90*time.Second, func() error {
		nc, err := nats.Connect(strings.Join(e.natsURLs, ","), nats.Timeout(2*time.Second))
		if err != nil {
			return err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx)
		return err
	})
}

// productEnv is the configuration every product process gets.
func (e *faultEnv) productEnv(dataDir, listen, metrics string) []string {
	return append(append(baseEnv(dataDir),
		"PERSONIO_API_URL="+e.sim.PersonioURL,
		"PERSONIO_CLIENT_ID="+e.sim.PersonioClientID,
		"PERSONIO_CLIENT_SECRET="+e.sim.PersonioClientSecret,
		"PERSONIO_WEBHOOK_TOKEN="+e.webhookToken,
		"PERSONIO_COMPANY_ID="+e.sim.CompanyID,
		"ENTRA_TENANT_ID="+e.sim.EntraTenantID,
		"ENTRA_CLIENT_ID="+e.sim.EntraClientID,
		"ENTRA_CLIENT_SECRET="+e.sim.EntraClientSecret,
		"ENTRA_AUTHORITY_HOST="+e.sim.EntraAuthorityHost,
		"GRAPH_API_URL="+e.sim.GraphURL,
		"SSL_CERT_FILE="+e.sim.CAFile,
		"NATS_URL="+strings.Join(e.natsURLs, ","),
		"QUEUE_REPLICAS="+strconv.Itoa(e.replicas),
		"DATA_DIR="+dataDir,
		"RULES_FILE="+e.rulesFile,
		"LISTEN_ADDR="+listen,
		"METRICS_ADDR="+metrics,
		"ADMIN_TOKEN="+e.adminToken,
		// No periodic full sync: every reconcile comes from a delivery, so
		// an account proves that its delivery was processed.
		"SYNC_INTERVAL=0",
		"LOG_LEVEL=info",
		"LOG_FORMAT=json",
	), e.guard...)
}

func (e *faultEnv) addProductProc(name, sub string) (*proc, string) {
	dataDir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		e.t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", faultFreePort(e.t))
	metrics := fmt.Sprintf("127.0.0.1:%d", faultFreePort(e.t))
	p := &proc{name: name, bin: e.bins.product, args: []string{sub},
		env: e.productEnv(dataDir, listen, metrics), logPath: filepath.Join(e.dir, name+".log")}
	if err := p.start(); err != nil {
		e.t.Fatal(err)
	}
	e.waitReady(p, "http://"+metrics+"/readyz")
	return p, listen
}

// waitReady polls /readyz of a product process.
func (e *faultEnv) waitReady(p *proc, url string) {
	e.t.Helper()
	if err := e.pollReady(p, url); err != nil {
		e.dumpLogs()
		e.t.Fatal(err)
	}
}

func (e *faultEnv) pollReady(p *proc, url string) error {
	return poll(p.name+" ready", 90*time.Second, func() error {
		if !p.running() {
			return fmt.Errorf("%s exited:\n%s", p.name, p.tail(20))
		}
		resp, err := e.http.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %d", resp.StatusCode)
		}
		return nil
	})
}

func (e *faultEnv) addReceiver(i int) {
	p, listen := e.addProductProc(fmt.Sprintf("receiver-%d", i+1), "serve")
	e.receivers = append(e.receivers, p)
	e.receiverURLs = append(e.receiverURLs, "http://"+listen+"/webhooks/personio")
}

func (e *faultEnv) addWorker(i int) {
	p, listen := e.addProductProc(fmt.Sprintf("worker-%d", i+1), "work")
	e.workers = append(e.workers, p)
	e.workerURLs = append(e.workerURLs, "http://"+listen+"/admin")
}

// restart starts a product process again and waits for its readiness.
// It is safe to call from any goroutine (it reports, never stops the test).
func (e *faultEnv) restart(p *proc) error {
	if err := p.start(); err != nil {
		return fmt.Errorf("restart %s: %w", p.name, err)
	}
	for _, kv := range p.env {
		if v, ok := strings.CutPrefix(kv, "METRICS_ADDR="); ok {
			return e.pollReady(p, "http://"+v+"/readyz")
		}
	}
	return nil
}

func (e *faultEnv) stopAll() {
	var wg sync.WaitGroup
	for _, p := range append(slices.Clone(e.receivers), e.workers...) {
		wg.Go(p.stop)
	}
	wg.Wait()
	for _, p := range e.natsNodes {
		wg.Go(p.stop)
	}
	if e.simProc != nil {
		wg.Go(e.simProc.stop)
	}
	wg.Wait()
}

// dumpLogs logs the tails of every process log (on failure).
func (e *faultEnv) dumpLogs() {
	all := append(append(append([]*proc{e.simProc}, e.natsNodes...), e.receivers...), e.workers...)
	for _, p := range all {
		if p != nil {
			e.t.Logf("--- %s (last lines of %s)\n%s", p.name, p.logPath, p.tail(15))
		}
	}
}

// poll calls fn until it succeeds or timeout passes.
func poll(what string, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %s: %w", what, timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// eventually is poll that fails the test (test goroutine only).
func (e *faultEnv) eventually(what string, timeout time.Duration, fn func() error) {
	e.t.Helper()
	if err := poll(what, timeout, fn); err != nil {
		e.dumpLogs()
		e.t.Fatal(err)
	}
}

// control calls the simulators' control API.
func (e *faultEnv) control(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.sim.ControlURL+path, body)
	if err != nil {
		return err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("simulators control %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("simulators control %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("simulators control %s %s: decode: %w", method, path, err)
	}
	return nil
}

func (e *faultEnv) setEntraFaults(throttle, serverErr float64, retryAfter time.Duration) {
	e.t.Helper()
	in := map[string]any{"throttle_rate": throttle, "server_error_rate": serverErr, "retry_after": retryAfter.String()}
	if err := e.control(http.MethodPut, "/entra/faults", in, nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *faultEnv) setPersonioUnavailable(d time.Duration) {
	e.t.Helper()
	if err := e.control(http.MethodPut, "/personio/unavailable", map[string]string{"for": d.String()}, nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *faultEnv) entraUsers() ([]entratest.User, error) {
	var st struct {
		Users []entratest.User `json:"users"`
	}
	err := e.control(http.MethodGet, "/entra/state", nil, &st)
	return st.Users, err
}

func (e *faultEnv) personIDs() []string {
	e.t.Helper()
	var persons []struct {
		ID string `json:"id"`
	}
	if err := e.control(http.MethodGet, "/personio/persons", nil, &persons); err != nil {
		e.t.Fatal(err)
	}
	ids := make([]string, len(persons))
	for i, p := range persons {
		ids[i] = p.ID
	}
	return ids
}

// queueBacklog sums pending and in-flight work over every consumer of the
// work stream (docs/jetstream.md#monitoring: NumPending is the backlog, NumAckPending in flight).
func (e *faultEnv) queueBacklog() (backlog int, deadLetters uint64, err error) {
	nc, err := nats.Connect(strings.Join(e.natsURLs, ","), nats.Timeout(2*time.Second))
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, queue.EventStream)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", queue.EventStream, err)
	}
	lister := s.ListConsumers(ctx)
	n := 0
	for ci := range lister.Info() {
		backlog += int(ci.NumPending) + ci.NumAckPending
		n++
	}
	if err := lister.Err(); err != nil {
		return 0, 0, fmt.Errorf("list consumers: %w", err)
	}
	if n == 0 {
		return 0, 0, errors.New("no consumers on the work stream")
	}
	dlq, err := js.Stream(ctx, queue.DeadLetterStream)
	if err != nil {
		return 0, 0, fmt.Errorf("stream %s: %w", queue.DeadLetterStream, err)
	}
	return backlog, dlq.CachedInfo().State.Msgs, nil
}

// plan runs `personio-entra plan --all --json` against the simulators and
// returns the drifting plans.
func (e *faultEnv) plan() ([]provisioning.Plan, error) {
	dir := filepath.Join(e.dir, "plan")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bins.product, "plan", "--all", "--json")
	cmd.Env = e.productEnv(dir, "127.0.0.1:0", "127.0.0.1:0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("plan --all: %v\n%s", err, lastLines(stderr.String(), 10))
	}
	var plans []provisioning.Plan
	if err := json.Unmarshal(stdout.Bytes(), &plans); err != nil {
		return nil, fmt.Errorf("plan --all output: %w", err)
	}
	return slices.DeleteFunc(plans, func(p provisioning.Plan) bool { return len(p.Changes) == 0 }), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// delivery is one webhook delivery as Personio sends it (docs/personio-api.md#webhook-deliveries:
// dataless event, token sent verbatim in Authorization).
type delivery struct {
	personID string
	body     []byte
}

// buildDeliveries makes n deliveries for the people: every person at least
// once (the first one is ids[0]), the rest spread at random; dupShare of
// them repeat an earlier body byte for byte (a Personio retry after a lost
// answer), which the receiver must de-duplicate.
func buildDeliveries(companyID string, ids []string, n int, dupShare float64, rng *rand.Rand) []delivery {
	events := []string{"person.updated", "employment.updated", "person.created"}
	base := time.Now().UTC()
	mk := func(i int, id string) delivery {
		ev := events[rng.IntN(len(events))]
		payload := map[string]any{"person": map[string]string{"id": id}}
		if strings.HasPrefix(ev, "employment.") {
			payload["employment"] = map[string]string{"id": "e" + id + "-0"}
		}
		b, _ := json.Marshal(map[string]any{
			"company_id": companyID, "event_name": ev,
			"occurred_at": base.Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
			"payload":     payload, "meta": map[string]any{},
		})
		return delivery{personID: id, body: b}
	}
	out := make([]delivery, 0, n)
	for i, id := range ids {
		if len(out) == n {
			break
		}
		out = append(out, mk(i, id))
	}
	for len(out) < n {
		if len(out) > 1 && rng.Float64() < dupShare {
			out = append(out, out[1+rng.IntN(len(out)-1)])
			continue
		}
		out = append(out, mk(len(out), ids[rng.IntN(len(ids))]))
	}
	// Shuffle all but the first (the company's top manager goes first, so
	// that most manager links can be set on the first reconcile).
	rest := out[1:]
	rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return out
}

// sendResult counts what the sender saw.
type sendResult struct {
	deliveries   int
	accepted     int // 2xx: stored (202) or recognised as a duplicate (200)
	deduplicated int // 200 {"status":"duplicate"}
	gaveUp       int // no 2xx after every attempt
	retries      int
	statuses     map[string]int
	acceptedIDs  map[string]bool
}

// send posts the deliveries at rate per second with conc in flight,
// retrying like Personio does (timeouts, transport errors and 5xx other
// than 501; never 4xx; docs/personio-api.md#webhook-deliveries) up to attempts times with a
// doubling delay. Each retry goes to the next receiver URL, as a load
// balancer in front of several receivers would route it.
func (e *faultEnv) send(ctx context.Context, ds []delivery, rate, conc, attempts int) sendResult {
	client := &http.Client{Timeout: 3 * time.Second} // Personio's answer deadline
	res := sendResult{deliveries: len(ds), statuses: map[string]int{}, acceptedIDs: map[string]bool{}}
	var mu sync.Mutex
	var next atomic.Int64
	jobs := make(chan delivery)
	var wg sync.WaitGroup
	record := func(key string) {
		mu.Lock()
		res.statuses[key]++
		mu.Unlock()
	}
	for range conc {
		wg.Go(func() {
			for d := range jobs {
				ok, dup, tries := e.deliverWithRetries(ctx, client, d, attempts, &next, record)
				mu.Lock()
				res.retries += tries - 1
				if ok {
					res.accepted++
					res.acceptedIDs[d.personID] = true
					if dup {
						res.deduplicated++
					}
				} else {
					res.gaveUp++
				}
				mu.Unlock()
			}
		})
	}
	tick := time.NewTicker(time.Second / time.Duration(max(rate, 1)))
	defer tick.Stop()
	for _, d := range ds {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		jobs <- d
	}
	close(jobs)
	wg.Wait()
	return res
}

// deliverWithRetries is one delivery with Personio's retry rules; record
// counts every answer ("transport error" when none came).
func (e *faultEnv) deliverWithRetries(ctx context.Context, client *http.Client, d delivery, attempts int,
	next *atomic.Int64, record func(string)) (ok, dup bool, tries int) {
	delay := 250 * time.Millisecond
	for tries = 1; tries <= attempts; tries++ {
		url := e.receiverURLs[int(next.Add(1))%len(e.receiverURLs)]
		status, body, err := postDelivery(ctx, client, url, e.webhookToken, d.body)
		if err != nil {
			record("transport error")
		} else {
			record(strconv.Itoa(status))
		}
		switch {
		case err == nil && status >= 200 && status < 300:
			return true, bytes.Contains(body, []byte(`"duplicate"`)), tries
		case err == nil && (status < 500 || status == http.StatusNotImplemented):
			return false, false, tries // final: Personio never retries a 4xx
		case tries == attempts:
			return false, false, tries
		}
		if !sleepCtx(ctx, delay) {
			return false, false, tries
		}
		delay = min(2*delay, 4*time.Second)
	}
	return false, false, attempts
}

func postDelivery(ctx context.Context, c *http.Client, url, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, b, nil
}

// prime sends the first delivery (the company's top manager) alone and
// waits until that account exists, so that the managers of everyone else
// resolve on their first reconcile instead of after the engine's manager
// retry.
func (e *faultEnv) prime(ctx context.Context, d delivery) sendResult {
	e.t.Helper()
	res := e.send(ctx, []delivery{d}, 1, 1, 10)
	e.eventually("first account", 2*time.Minute, func() error {
		users, err := e.entraUsers()
		if err != nil {
			return err
		}
		for _, u := range users {
			if u.EmployeeID == d.personID {
				return nil
			}
		}
		return fmt.Errorf("no account for person %s yet", d.personID)
	})
	return res
}

// merge adds another send's counts.
func (r *sendResult) merge(o sendResult) {
	r.deliveries += o.deliveries
	r.accepted += o.accepted
	r.deduplicated += o.deduplicated
	r.gaveUp += o.gaveUp
	r.retries += o.retries
	if r.statuses == nil {
		r.statuses = map[string]int{}
	}
	if r.acceptedIDs == nil {
		r.acceptedIDs = map[string]bool{}
	}
	for k, v := range o.statuses {
		r.statuses[k] += v
	}
	for k := range o.acceptedIDs {
		r.acceptedIDs[k] = true
	}
}

// faultResult is one row of the results table.
type faultResult struct {
	Scenario     string
	Deliveries   int
	Accepted     int
	Deduplicated int
	GaveUp       int
	People       int
	Users        int
	DupUsers     int
	Drift        int
	Lost         int
	DeadLetters  uint64
	// Injected faults the product actually met.
	GraphThrottled, GraphErrors int
	PersonioRejected            int64
	Duration                    time.Duration
	DrainDuration               time.Duration
}

// verify waits for the queues to drain and for the state to converge, then
// fills the checks of the row: duplicate users (unique employeeId), drift
// (plan --all), lost deliveries (accepted people whose Entra state is not
// the desired one) and dead letters.
func (e *faultEnv) verify(r *faultResult, sent sendResult, convergeWithin time.Duration) {
	t := e.t
	t.Helper()
	drainStart := time.Now()
	e.drained(convergeWithin)
	var graph entratest.Counters
	var outage struct {
		Rejected int64 `json:"rejected"`
	}
	if err := e.control(http.MethodGet, "/entra/requests", nil, &graph); err != nil {
		t.Fatal(err)
	}
	if err := e.control(http.MethodGet, "/personio/unavailable", nil, &outage); err != nil {
		t.Fatal(err)
	}
	r.GraphThrottled, r.GraphErrors, r.PersonioRejected = graph.Throttled, graph.Errors, outage.Rejected
	// The faults end with the run; the checks read without them.
	e.setEntraFaults(0, 0, 0)
	e.setPersonioUnavailable(0)
	// A person whose manager had no account yet is planned again after
	// the engine's manager retry (2 min): poll for convergence.
	var drift []provisioning.Plan
	deadline := time.Now().Add(convergeWithin)
	for {
		var err error
		drift, err = e.plan()
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		if len(drift) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Second)
	}
	r.DrainDuration = time.Since(drainStart)
	users, err := e.entraUsers()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, u := range users {
		if u.EmployeeID != "" && !u.Deleted {
			seen[u.EmployeeID]++
		}
	}
	for _, n := range seen {
		r.Users++
		if n > 1 {
			r.DupUsers += n - 1
		}
	}
	r.Deliveries, r.Accepted, r.Deduplicated, r.GaveUp = sent.deliveries, sent.accepted, sent.deduplicated, sent.gaveUp
	r.Drift = len(drift)
	for _, p := range drift {
		if sent.acceptedIDs[p.PersonID] {
			r.Lost++
		}
		if r.Lost <= 5 && sent.acceptedIDs[p.PersonID] {
			t.Logf("drift for accepted person %s: %v (notes %v)", p.PersonID, p.Changes, p.Notes)
		}
	}
	_, dl, err := e.queueBacklog()
	if err != nil {
		t.Fatal(err)
	}
	r.DeadLetters = dl
}

// check fails the test on any broken guarantee.
func (r faultResult) check(t *testing.T, wantAllAccepted bool) {
	t.Helper()
	if r.DupUsers != 0 {
		t.Errorf("%s: %d duplicate users (same employeeId)", r.Scenario, r.DupUsers)
	}
	if r.Drift != 0 {
		t.Errorf("%s: %d people drift from their desired state", r.Scenario, r.Drift)
	}
	if r.Lost != 0 {
		t.Errorf("%s: %d accepted deliveries lost (person not reconciled)", r.Scenario, r.Lost)
	}
	if r.DeadLetters != 0 {
		t.Errorf("%s: %d dead letters, want none", r.Scenario, r.DeadLetters)
	}
	if wantAllAccepted && r.GaveUp != 0 {
		t.Errorf("%s: %d deliveries never accepted after every retry", r.Scenario, r.GaveUp)
	}
	if r.Accepted+r.GaveUp != r.Deliveries {
		t.Errorf("%s: %d accepted + %d given up != %d deliveries", r.Scenario, r.Accepted, r.GaveUp, r.Deliveries)
	}
	if r.Users == 0 {
		t.Errorf("%s: no accounts at all: nothing was reconciled", r.Scenario)
	}
}

func resultsTable(rows []faultResult) string {
	var b strings.Builder
	b.WriteString("| scenario | deliveries | accepted | deduplicated | gave up | people | users | duplicate users | drift | lost | dead letters | faults met | duration | drain + converge |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %s | %s | %s |\n",
			r.Scenario, r.Deliveries, r.Accepted, r.Deduplicated, r.GaveUp, r.People, r.Users, r.DupUsers,
			r.Drift, r.Lost, r.DeadLetters,
			fmt.Sprintf("Graph 429: %d, Graph 4xx/5xx: %d, Personio 503: %d", r.GraphThrottled, r.GraphErrors, r.PersonioRejected), r.Duration.Round(time.Second), r.DrainDuration.Round(time.Second))
	}
	return b.String()
}

// writeResults logs the table and writes it to $FAULT_RESULTS when set.
func writeResults(t *testing.T, title string, rows []faultResult) {
	t.Helper()
	table := resultsTable(rows)
	t.Logf("%s\n%s", title, table)
	path := os.Getenv("FAULT_RESULTS")
	if path == "" {
		return
	}
	doc := fmt.Sprintf("## %s\n\nBuilt from %s; %s; %d CPUs.\n\n%s\n", title, faultRevision,
		time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), table)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("FAULT_RESULTS: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.WriteString(doc); err != nil {
		t.Errorf("FAULT_RESULTS: %v", err)
	}
}

// scenario is one fault run on a fresh installation.
type scenario struct {
	name       string
	people     int
	deliveries int
	dupShare   float64
	rate       int // deliveries per second
	env        faultEnvOptions
	// setup runs before the deliveries (for example Graph faults for the
	// whole run); chaos runs while they are sent and returns when ctx ends.
	setup func(e *faultEnv)
	chaos func(ctx context.Context, e *faultEnv) error
	// wantAllAccepted: every delivery must get a 2xx within its retries.
	wantAllAccepted bool
	converge        time.Duration
}

func runScenario(t *testing.T, bins faultBinaries, sc scenario) faultResult {
	t.Helper()
	sc.env.people = sc.people
	e := newFaultEnv(t, bins, sc.env)
	ids := e.personIDs()
	if len(ids) != sc.people {
		t.Fatalf("simulators hold %d people, want %d", len(ids), sc.people)
	}
	ds := buildDeliveries(e.sim.CompanyID, ids, sc.deliveries, sc.dupShare, rand.New(rand.NewPCG(uint64(len(sc.name)), 7)))
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	sent := e.prime(ctx, ds[0])
	if sc.setup != nil {
		sc.setup(e)
	}
	chaosCtx, stopChaos := context.WithCancel(ctx)
	chaosDone := make(chan error, 1)
	go func() {
		if sc.chaos == nil {
			chaosDone <- nil
			return
		}
		chaosDone <- sc.chaos(chaosCtx, e)
	}()
	sent.merge(e.send(ctx, ds[1:], sc.rate, 16, 8))
	stopChaos()
	if err := <-chaosDone; err != nil {
		e.dumpLogs()
		t.Fatalf("%s: fault injection: %v", sc.name, err)
	}
	r := faultResult{Scenario: sc.name, People: sc.people, Duration: time.Since(start)}
	t.Logf("%s: sent in %s; answers %v, %d retries", sc.name, r.Duration.Round(time.Second), sent.statuses, sent.retries)
	e.verify(&r, sent, sc.converge)
	r.Duration = time.Since(start)
	r.check(t, sc.wantAllAccepted)
	if t.Failed() {
		e.dumpLogs()
	}
	return r
}

// every runs fn every period until ctx ends (the first time after one period).
func every(ctx context.Context, period time.Duration, fn func(i int) error) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := fn(i); err != nil {
			return err
		}
	}
}

// sleepCtx waits d or until ctx ends; false when ctx ended.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// admin calls a worker's admin API.
func (e *faultEnv) admin(method, path string, out any) error {
	req, err := http.NewRequest(method, e.workerURLs[0]+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+e.adminToken)
	resp, err := e.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("admin %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// drained waits until no work is pending or in flight.
func (e *faultEnv) drained(within time.Duration) {
	e.eventually("queues drained", within, func() error {
		b, _, err := e.queueBacklog()
		if err != nil {
			return err
		}
		if b > 0 {
			return fmt.Errorf("%d messages pending or in flight", b)
		}
		return nil
	})
}

// converged waits until plan --all finds no drift.
func (e *faultEnv) converged(within time.Duration) {
	e.eventually("no drift", within, func() error {
		drift, err := e.plan()
		if err != nil {
			return err
		}
		if len(drift) > 0 {
			return fmt.Errorf("%d people drift, first %s: %v %v", len(drift), drift[0].PersonID, drift[0].Changes, drift[0].Notes)
		}
		return nil
	})
}

// massLeavers is the safeguard scenario: the company is onboarded, then
// `leavers` people get a last working day of yesterday in Personio at once
// (an HR bulk import) and their webhooks arrive together. At most the
// threshold may lose access; the rest waits in one approval, `approve`
// (the admin API) releases it, and afterwards the directory equals the
// desired state.
type massLeavers struct {
	people, leavers, threshold int
	env                        faultEnvOptions
	converge                   time.Duration
}

func runMassLeavers(t *testing.T, bins faultBinaries, m massLeavers) faultResult {
	t.Helper()
	m.env.people = m.people
	m.env.guard = []string{"GUARD_MAX_CHANGES=" + strconv.Itoa(m.threshold), "GUARD_MAX_PERCENT=0", "GUARD_WINDOW=1h"}
	e := newFaultEnv(t, bins, m.env)
	start := time.Now()
	ids := e.personIDs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	onboard := buildDeliveries(e.sim.CompanyID, ids, len(ids), 0, rand.New(rand.NewPCG(11, 7)))
	sent := e.prime(ctx, onboard[0])
	sent.merge(e.send(ctx, onboard[1:], 100, 16, 8))
	e.drained(m.converge)
	e.converged(m.converge)

	users, err := e.entraUsers()
	if err != nil {
		t.Fatal(err)
	}
	var persons []map[string]any
	if err := e.control(http.MethodGet, "/personio/persons", nil, &persons); err != nil {
		t.Fatal(err)
	}
	enabled := map[string]bool{}
	for _, u := range users {
		if u.AccountEnabled && u.EmployeeID != "" && !u.Deleted {
			enabled[u.EmployeeID] = true
		}
	}
	yesterday := time.Now().AddDate(0, 0, -2).Format(time.DateOnly) // a full day in every zone
	var leavers []string
	for _, p := range persons {
		id, _ := p["id"].(string)
		emps, _ := p["employments"].([]any)
		if !enabled[id] || len(emps) == 0 || len(leavers) == m.leavers {
			continue
		}
		emp := emps[0].(map[string]any)
		emp["status"] = "INACTIVE"
		emp["termination"] = map[string]any{"termination_date": yesterday, "last_working_day": yesterday, "type": "EMPLOYEE"}
		delete(p, "created_at")
		delete(p, "updated_at")
		if err := e.control(http.MethodPut, "/personio/persons/"+id, p, nil); err != nil {
			t.Fatal(err)
		}
		leavers = append(leavers, id)
	}
	if len(leavers) != m.leavers {
		t.Fatalf("only %d people with enabled accounts, want %d leavers", len(leavers), m.leavers)
	}
	ds := make([]delivery, len(leavers))
	for i, id := range leavers {
		b, _ := json.Marshal(map[string]any{"company_id": e.sim.CompanyID, "event_name": "employment.updated",
			"occurred_at": time.Now().UTC().Add(time.Duration(i) * time.Millisecond).Format(time.RFC3339Nano),
			"payload":     map[string]any{"person": map[string]string{"id": id}}, "meta": map[string]any{}})
		ds[i] = delivery{personID: id, body: b}
	}
	sent.merge(e.send(ctx, ds, 200, 16, 8))
	e.drained(m.converge)

	disabled := func() (n int) {
		users, err := e.entraUsers()
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]bool{}
		for _, u := range users {
			if !u.Deleted && !u.AccountEnabled {
				byID[u.EmployeeID] = true
			}
		}
		for _, id := range leavers {
			if byID[id] {
				n++
			}
		}
		return n
	}
	if got := disabled(); got > m.threshold {
		t.Fatalf("%d leavers disabled before approval; the safeguard allows %d", got, m.threshold)
	} else if got != m.threshold {
		t.Errorf("%d leavers disabled before approval, want the threshold %d", got, m.threshold)
	}
	var aps []provisioning.Approval
	if err := e.admin(http.MethodGet, "/approvals", &aps); err != nil {
		t.Fatal(err)
	}
	if len(aps) != 1 || len(aps[0].People) != m.leavers-m.threshold {
		t.Fatalf("want one approval holding %d people, got %d approvals: %+v", m.leavers-m.threshold, len(aps), aps)
	}
	if err := e.admin(http.MethodPost, "/approvals/"+aps[0].ID+"/approve", nil); err != nil {
		t.Fatal(err)
	}
	e.drained(m.converge)
	// A reconcile that Graph throttled waits out its retry delay, which
	// the backlog does not show: wait for the outcome itself.
	if err := poll("every leaver disabled after approval", m.converge, func() error {
		if got := disabled(); got != m.leavers {
			return fmt.Errorf("%d of %d leavers disabled after approval", got, m.leavers)
		}
		return nil
	}); err != nil {
		// Name who kept access, with their audit trail, before failing.
		users, _ := e.entraUsers()
		for _, u := range users {
			if u.AccountEnabled && slices.Contains(leavers, u.EmployeeID) {
				var audit []json.RawMessage
				_ = e.admin(http.MethodGet, "/audit?employee="+u.EmployeeID+"&limit=20", &audit)
				t.Logf("leaver %s (%s) still enabled; audit: %s", u.EmployeeID, u.UserPrincipalName, audit)
			}
		}
		e.dumpLogs()
		t.Fatal(err)
	}
	e.converged(m.converge)
	if err := e.admin(http.MethodGet, "/approvals", &aps); err != nil || len(aps) != 0 {
		t.Fatalf("approvals after release: %+v %v", aps, err)
	}
	r := faultResult{Scenario: fmt.Sprintf("safeguard: %d of %d people leave at once (threshold %d)", m.leavers, m.people, m.threshold),
		People: m.people, Deliveries: sent.deliveries, Accepted: sent.accepted, Deduplicated: sent.deduplicated, GaveUp: sent.gaveUp,
		Duration: time.Since(start)}
	r.Users = len(enabled)
	_, r.DeadLetters, _ = e.queueBacklog()
	if t.Failed() {
		e.dumpLogs()
	}
	return r
}
