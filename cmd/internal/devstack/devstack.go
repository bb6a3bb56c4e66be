// Package devstack starts the two simulators the way `demo`, the tests and
// cmd/simulators all need them: a Personio simulator loaded with a company,
// an Entra simulator for the rules' domain, and the managed groups of the
// rules created once (security groups, and "Women" as a Microsoft 365 group,
// because Graph cannot manage the members of a mail-enabled security group:
// https://learn.microsoft.com/en-us/graph/api/resources/groups-overview).
//
// It never starts the product itself; that is the caller's wiring.
package devstack

import (
	"log/slog"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
	"github.com/personio-entra/personio-entra/rules"
)

// The Personio simulator's API credential.
const (
	PersonioClientID     = "sim-client-id"
	PersonioClientSecret = "sim-client-secret"
)

// Options describe the simulated services.
type Options struct {
	Logger *slog.Logger
	Rules  *rules.Rules          // the domain and the managed groups (required)
	People *personiotest.Company // nil: the 54-person sample company
	// Latency is added to every simulated request; Replication delays the
	// visibility of new Entra objects.
	Latency, Replication time.Duration
	// WriteBudget and WriteWindow set Graph's write throttling (the
	// simulator's defaults when zero).
	WriteBudget int
	WriteWindow time.Duration
	// Seed adds Entra objects before the managed groups are created; a
	// seeded group with a managed group's name is used as that group.
	Seed func(*entratest.Server)
	// Converged starts the Entra simulator with the tenant the rules ask
	// for at Now (time.Now when zero): every person in scope has the
	// account Rules.Evaluate describes, with its attributes, employeeId,
	// manager and managed-group memberships (SeedConverged). Nothing is
	// owned yet: the product adopts these accounts on its first sync.
	Converged bool
	Now       time.Time
}

// Simulators are the running simulated services.
type Simulators struct {
	Personio *personiotest.Server
	Entra    *entratest.Server
	Company  *personiotest.Company
	// Groups maps each managed group of the rules to its object id.
	Groups map[string]string
}

// Start starts both simulators. Close them with Close.
func Start(o Options) (*Simulators, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.People == nil {
		c, err := personiotest.LoadSampleCompany(time.Now())
		if err != nil {
			return nil, err
		}
		o.People = c
	}
	s := &Simulators{Company: o.People, Groups: map[string]string{}}
	s.Personio = personiotest.New(personiotest.Options{Logger: o.Logger.With("component", "personio-simulator"),
		Latency: o.Latency, AllowHTTPWebhooks: true})
	s.Personio.SetCompany(o.People)
	s.Entra = entratest.New(entratest.Options{Logger: o.Logger.With("component", "entra-simulator"),
		Latency: o.Latency, ReplicationDelay: o.Replication, Domain: o.Rules.Domain(),
		WriteBudget: o.WriteBudget, WriteWindow: o.WriteWindow})
	if o.Seed != nil {
		o.Seed(s.Entra)
	}
	var members map[string][]string
	if o.Converged {
		var err error
		if members, err = SeedConverged(s.Personio.URL(), s.Entra, o.Rules, o.Now); err != nil {
			s.Close()
			return nil, err
		}
	}
	existing := map[string]string{}
	for _, g := range s.Entra.Groups() {
		existing[g.DisplayName] = g.ID
	}
	for _, key := range o.Rules.ManagedGroups() {
		if id, ok := existing[key]; ok {
			s.Groups[key] = id
			for _, m := range members[key] {
				s.Entra.AddMember(id, m)
			}
			continue
		}
		g := entratest.Group{DisplayName: key, SecurityEnabled: true, GroupTypes: []string{}}
		if key == "Women" {
			g = entratest.Group{DisplayName: key, MailEnabled: true, GroupTypes: []string{"Unified"},
				Mail: "women@" + o.Rules.Domain(), MailNickname: "women"}
		}
		g.Members = members[key]
		s.Groups[key] = s.Entra.AddGroup(g)
	}
	return s, nil
}

// Close stops both simulators.
func (s *Simulators) Close() {
	s.Personio.Close()
	s.Entra.Close()
}

// Ready is the line cmd/simulators prints on stdout once everything
// listens, and what the multi-process tests read back: every URL and
// credential a product process needs.
type Ready struct {
	PersonioURL          string `json:"personio_url"`
	PersonioClientID     string `json:"personio_client_id"`
	PersonioClientSecret string `json:"personio_client_secret"`
	CompanyID            string `json:"company_id"`
	People               int    `json:"people"`
	EntraAuthorityHost   string `json:"entra_authority_host"`
	GraphURL             string `json:"graph_url"`
	EntraTenantID        string `json:"entra_tenant_id"`
	EntraClientID        string `json:"entra_client_id"`
	EntraClientSecret    string `json:"entra_client_secret"`
	// CAFile is the Entra simulator's TLS certificate in PEM form: point
	// SSL_CERT_FILE at it in processes that talk to the simulator.
	CAFile     string            `json:"ca_file"`
	ControlURL string            `json:"control_url"`
	Groups     map[string]string `json:"groups"` // managed group name → object id
}

// Ready describes the simulators for processes started elsewhere; the
// Personio URL and the control URL are the caller's (cmd/simulators puts a
// front with an outage switch before the Personio simulator).
func (s *Simulators) Ready(personioURL, controlURL, caFile string) Ready {
	return Ready{
		PersonioURL: personioURL, PersonioClientID: PersonioClientID, PersonioClientSecret: PersonioClientSecret,
		CompanyID: s.Company.CompanyID, People: len(s.Company.Persons),
		EntraAuthorityHost: s.Entra.AuthorityHost(), GraphURL: s.Entra.GraphURL(),
		EntraTenantID: s.Entra.TenantID(), EntraClientID: s.Entra.ClientID(), EntraClientSecret: s.Entra.ClientSecret(),
		CAFile: caFile, ControlURL: controlURL, Groups: s.Groups,
	}
}
