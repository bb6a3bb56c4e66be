// Package entra implements provisioning.Directory on Microsoft Graph with
// msgraph-sdk-go and azidentity. It is the only package of the product that
// imports the Graph SDK (it takes minutes to compile, docs/graph-behaviour.md#sdk-build-time).
package entra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	"github.com/microsoftgraph/msgraph-sdk-go-core/authentication"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/personio-entra/personio-entra/provisioning"
)

// Config selects the tenant, the credential and the endpoints.
type Config struct {
	TenantID, ClientID, ClientSecret string
	// CertificatePath is a PEM or PKCS#12 file holding the certificate and
	// its private key (azidentity.ParseCertificates).
	CertificatePath     string
	CertificatePassword string // for an encrypted PKCS#12 file
	Cloud               string // public (default), usgov, china
	// AuthorityHost overrides the identity platform host (instance
	// discovery is disabled with it).
	AuthorityHost string
	// GraphURL overrides the Graph base URL, e.g. https://127.0.0.1:PORT/v1.0.
	// Plain http is accepted for loopback hosts only.
	GraphURL   string
	HTTPClient *http.Client // optional: base transport and timeout for token and Graph calls
	Logger     *slog.Logger

	// Retry bounds retries of 429/503/504 (zero values: defaults).
	Retry RetryPolicy
	// ReplicationWait bounds how long reads and references of an object
	// this process just created are retried on 404 (default 30s; see
	// docs/graph-behaviour.md#replication-delay).
	ReplicationWait time.Duration
	// RoleAssignableGroups says the app holds RoleManagement.ReadWrite.Directory,
	// so the members of role-assignable groups can be managed
	// (docs/graph-behaviour.md#groups-graph-cannot-write).
	RoleAssignableGroups bool
	// LeaveDate says the app holds User-LifeCycleInfo.ReadWrite.All, so
	// employeeLeaveDateTime is read (and may be written).
	LeaveDate bool
	// Credential replaces the credential selection (tests, custom chains).
	Credential azcore.TokenCredential
}

type cloudInfo struct {
	cfg   cloud.Configuration
	graph string // Graph base URL
}

// Authority, Graph host and scope per national cloud
// (docs/graph-behaviour.md#sdk-base-url-and-token-hosts).
var clouds = map[string]cloudInfo{
	"public": {cloud.AzurePublic, "https://graph.microsoft.com/v1.0"},
	"usgov":  {cloud.AzureGovernment, "https://graph.microsoft.us/v1.0"},
	"china":  {cloud.AzureChina, "https://microsoftgraph.chinacloudapi.cn/v1.0"},
}

// Directory is the Graph implementation of provisioning.Directory.
type Directory struct {
	client    *msgraphsdk.GraphServiceClient
	graphURL  string // base used in @odata.id references
	log       *slog.Logger
	repl      time.Duration
	roleMgmt  bool
	leaveDate bool

	mu     sync.Mutex
	recent map[string]time.Time // ids created by this process, for replication retries

	throttle *throttleSignal
	// cred and scope read the granted permissions (tap.go).
	cred  azcore.TokenCredential
	scope string
}

// ThrottledUntil is when the latest 429 Graph answered this client asked it
// to wait until (the zero time when it never did). The engine holds group
// additions while it lies ahead, so that their batches fill and creates and
// manager references get the write budget first.
func (d *Directory) ThrottledUntil() time.Time { return d.throttle.get() }

var _ provisioning.Directory = (*Directory)(nil)

// New builds the credential and the Graph client. It does not call the
// network; use Check for that.
func New(ctx context.Context, cfg Config) (*Directory, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "entra")
	name := strings.ToLower(strings.TrimSpace(cfg.Cloud))
	if name == "" {
		name = "public"
	}
	ci, ok := clouds[name]
	if !ok {
		return nil, fmt.Errorf("entra: unknown cloud %q: want public, usgov or china", cfg.Cloud)
	}
	graphBase := ci.graph
	if cfg.GraphURL != "" {
		if err := checkURL("GraphURL", cfg.GraphURL); err != nil {
			return nil, err
		}
		graphBase = strings.TrimRight(cfg.GraphURL, "/")
	}
	cc := ci.cfg
	if cfg.AuthorityHost != "" {
		if err := checkURL("AuthorityHost", cfg.AuthorityHost); err != nil {
			return nil, err
		}
		cc.ActiveDirectoryAuthorityHost = strings.TrimRight(cfg.AuthorityHost, "/") + "/"
	}
	gu, _ := url.Parse(graphBase)
	// The scope names the Graph resource. A loopback override (the
	// simulator) keeps the cloud's scope; another override names its own host.
	scope := strings.TrimSuffix(ci.graph, "/v1.0") + "/.default"
	if cfg.GraphURL != "" && !isLoopback(gu.Hostname()) {
		scope = gu.Scheme + "://" + gu.Host + "/.default"
	}

	cred := cfg.Credential
	if cred == nil {
		var err error
		cred, err = credential(cfg, cc, log)
		if err != nil {
			return nil, err
		}
	}
	// The auth provider only attaches tokens for allow-listed hosts and
	// silently sends none for others: list the override's host
	// (docs/graph-behaviour.md#sdk-base-url-and-token-hosts).
	hosts := []string{"graph.microsoft.com", "graph.microsoft.us", "dod-graph.microsoft.us", "microsoftgraph.chinacloudapi.cn"}
	if h := gu.Hostname(); !containsFold(hosts, h) {
		hosts = append(hosts, h)
	}
	auth, err := authentication.NewAzureIdentityAuthenticationProviderWithScopesAndValidHosts(cred, []string{scope}, hosts)
	if err != nil {
		return nil, fmt.Errorf("entra: auth provider for %s: %w", gu.Host, err)
	}
	throttle := &throttleSignal{}
	var parent http.RoundTripper = http.DefaultTransport
	timeout := 100 * time.Second
	if cfg.HTTPClient != nil {
		if cfg.HTTPClient.Transport != nil {
			parent = cfg.HTTPClient.Transport
		}
		if cfg.HTTPClient.Timeout > 0 {
			timeout = cfg.HTTPClient.Timeout
		}
	}
	hc := &http.Client{
		Transport:     khttp.NewCustomTransportWithParentTransport(metricsTransport{next: parent}, middlewares(cfg.Retry, log, throttle)...),
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(auth, nil, nil, hc)
	if err != nil {
		return nil, fmt.Errorf("entra: graph request adapter: %w", err)
	}
	// The base URL must be set before the client is built
	// (docs/graph-behaviour.md#sdk-base-url-and-token-hosts).
	adapter.SetBaseUrl(graphBase)
	repl := cfg.ReplicationWait
	if repl <= 0 {
		repl = 30 * time.Second
	}
	d := &Directory{
		throttle: throttle,
		client:   msgraphsdk.NewGraphServiceClient(adapter),
		graphURL: graphBase,
		log:      log,
		repl:     repl,
		roleMgmt: cfg.RoleAssignableGroups, leaveDate: cfg.LeaveDate,
		recent: map[string]time.Time{},
		cred:   cred, scope: scope,
	}
	log.Debug("graph client ready", "graph_url", graphBase, "cloud", name, "scope", scope)
	return d, nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkURL accepts https anywhere and http only on loopback.
func checkURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("entra: %s %q is not an absolute URL", name, raw)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	default:
		return fmt.Errorf("entra: %s %q: https is required (plain http only for loopback)", name, raw)
	}
	return nil
}

// credential picks client secret, certificate, or the default chain
// (workload identity, then managed identity) when neither is configured.
func credential(cfg Config, cc cloud.Configuration, log *slog.Logger) (azcore.TokenCredential, error) {
	co := azcore.ClientOptions{Cloud: cc}
	if cfg.HTTPClient != nil {
		co.Transport = cfg.HTTPClient
	}
	disable := cfg.AuthorityHost != ""
	if cfg.ClientSecret != "" && cfg.CertificatePath != "" {
		return nil, errors.New("entra: configure a client secret or a certificate, not both")
	}
	switch {
	case cfg.ClientSecret != "":
		if cfg.TenantID == "" || cfg.ClientID == "" {
			return nil, errors.New("entra: client secret needs tenant id and client id")
		}
		log.Info("entra credential", "kind", "client_secret", "tenant_id", cfg.TenantID, "client_id", cfg.ClientID)
		c, err := azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, cfg.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: disable})
		if err != nil {
			return nil, fmt.Errorf("entra: client secret credential: %w", err)
		}
		return c, nil
	case cfg.CertificatePath != "":
		if cfg.TenantID == "" || cfg.ClientID == "" {
			return nil, errors.New("entra: certificate needs tenant id and client id")
		}
		data, err := os.ReadFile(cfg.CertificatePath)
		if err != nil {
			return nil, fmt.Errorf("entra: read certificate %s: %w", cfg.CertificatePath, err)
		}
		var pw []byte
		if cfg.CertificatePassword != "" {
			pw = []byte(cfg.CertificatePassword)
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			return nil, fmt.Errorf("entra: parse certificate %s: %w", cfg.CertificatePath, err)
		}
		log.Info("entra credential", "kind", "certificate", "tenant_id", cfg.TenantID, "client_id", cfg.ClientID, "certificate", cfg.CertificatePath)
		c, err := azidentity.NewClientCertificateCredential(cfg.TenantID, cfg.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: disable})
		if err != nil {
			return nil, fmt.Errorf("entra: certificate credential: %w", err)
		}
		return c, nil
	}
	var chain []azcore.TokenCredential
	if os.Getenv("AZURE_FEDERATED_TOKEN_FILE") != "" {
		wi, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: co, TenantID: cfg.TenantID, ClientID: cfg.ClientID, DisableInstanceDiscovery: disable})
		if err != nil {
			return nil, fmt.Errorf("entra: workload identity credential: %w", err)
		}
		chain = append(chain, wi)
	}
	mo := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
	if cfg.ClientID != "" {
		mo.ID = azidentity.ClientID(cfg.ClientID)
	}
	mi, err := azidentity.NewManagedIdentityCredential(mo)
	if err != nil {
		return nil, fmt.Errorf("entra: managed identity credential: %w", err)
	}
	chain = append(chain, mi)
	log.Info("entra credential", "kind", "default_chain", "workload_identity", len(chain) == 2, "client_id", cfg.ClientID)
	c, err := azidentity.NewChainedTokenCredential(chain, nil)
	if err != nil {
		return nil, fmt.Errorf("entra: credential chain: %w", err)
	}
	return c, nil
}

// Check gets a token and makes one cheap read (GET /users?$top=1&$select=id),
// for `personio-entra check`.
func (d *Directory) Check(ctx context.Context) error {
	ctx = withOp(ctx, "check")
	top := int32(1)
	_, err := d.client.Users().Get(ctx, &users.UsersRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UsersRequestBuilderGetQueryParameters{Top: &top, Select: []string{"id"}},
	})
	if err != nil {
		return d.fail("check access", err)
	}
	return nil
}

// markCreated remembers an id this process created, for replication retries.
func (d *Directory) markCreated(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for k, t := range d.recent {
		if now.Sub(t) > d.repl {
			delete(d.recent, k)
		}
	}
	d.recent[id] = now
}

func (d *Directory) forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.recent, id)
}

// isRecent reports whether any id was created by this process within the
// replication window.
func (d *Directory) isRecent(ids ...string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, id := range ids {
		if t, ok := d.recent[id]; ok && time.Since(t) <= d.repl {
			return true
		}
	}
	return false
}

// replicationRetry runs fn again while it fails with not-found and one of
// ids was created by this process recently: a 404 right after a create is
// normal, and the advice is to retry with backoff
// (docs/graph-behaviour.md#replication-delay).
func (d *Directory) replicationRetry(ctx context.Context, ids []string, fn func() error) error {
	err := fn()
	if err == nil || !errors.Is(err, provisioning.ErrNotFound) || !d.isRecent(ids...) {
		return err
	}
	deadline := time.Now().Add(d.repl)
	delay := 250 * time.Millisecond
	for time.Now().Before(deadline) {
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		if err = fn(); err == nil || !errors.Is(err, provisioning.ErrNotFound) {
			return err
		}
		delay = min(delay*2, 4*time.Second)
	}
	return err
}
