package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is the whole process configuration, read from the environment
// (README.md, "Configuration"). Secrets are never logged: LogValue redacts.
type Config struct {
	PersonioAPIURL       string
	PersonioClientID     string
	PersonioClientSecret string
	WebhookTokens        []string // PERSONIO_WEBHOOK_TOKEN, comma-separated for rotation
	WebhookInsecure      bool     // PERSONIO_WEBHOOK_INSECURE_NO_TOKEN: accept unauthenticated webhooks
	PersonioCompanyID    string
	PersonioWriteEmail   bool // PERSONIO_WRITE_BACK_EMAIL

	EntraTenantID     string
	EntraClientID     string
	EntraClientSecret string
	EntraClientCert   string // path to a PEM/PKCS#12 file with certificate and key
	EntraCertPassword string // ENTRA_CLIENT_CERTIFICATE_PASSWORD for an encrypted PKCS#12 file
	EntraRoleGroups   bool   // ENTRA_ROLE_ASSIGNABLE_GROUPS: the app holds RoleManagement.ReadWrite.Directory
	EntraLeaveDate    bool   // ENTRA_RECORD_LEAVE_DATE: keep employeeLeaveDateTime (User-LifeCycleInfo.ReadWrite.All)
	EntraCloud        string // public, usgov, china
	EntraAuthority    string // ENTRA_AUTHORITY_HOST override
	GraphAPIURL       string // GRAPH_API_URL override

	NATSURL    string
	NATSCreds  string
	DataDir    string
	Partitions int // QUEUE_PARTITIONS
	Replicas   int // QUEUE_REPLICAS: JetStream replicas of streams and consumers (3 in a cluster)

	RulesFile string

	ListenAddr  string
	AdminToken  string
	MetricsAddr string
	// ConsoleSecureCookie (CONSOLE_SECURE_COOKIE) marks the console's
	// cookies Secure although the request reached this process over plain
	// HTTP: a TLS-terminating proxy is in front.
	ConsoleSecureCookie bool

	SyncInterval      time.Duration
	DryRun            bool
	GuardMaxChanges   int           // GUARD_MAX_CHANGES: people who may lose access within GUARD_WINDOW without approval
	GuardMaxPercent   float64       // GUARD_MAX_PERCENT: same, as a share of the owned accounts (the larger bound wins)
	GuardWindow       time.Duration // GUARD_WINDOW: the safeguard's rolling window
	GuardMinSource    float64       // GUARD_MIN_SOURCE_PERCENT: a complete read below this share of owned accounts is a collapsed source
	ProtectedAccounts []string      // PROTECTED_ACCOUNTS: UPNs or object ids never changed

	LogLevel  slog.Level
	LogFormat string // json, text

	NotifyMailbox    string        // NOTIFY_MAILBOX: the mailbox notifications are sent as (notify.go)
	NotifyWebhookURL string        // NOTIFY_WEBHOOK_URL: a secret (Slack and Teams URLs carry their credential)
	notifyRetryBase  time.Duration // the first notification retry delay (tests; the queue's default otherwise)
}

// role says which parts of the configuration a subcommand needs.
type role struct {
	receiver bool // accepts webhooks
	worker   bool // reads Personio, writes Entra
	personio bool // talks to the Personio API (webhook, check, plan)
	entra    bool // talks to Graph
}

// loadConfig reads the environment. Parse errors are collected, not returned
// one at a time; call Validate for the rest.
func loadConfig(getenv func(string) string) (Config, error) {
	var errs []error
	str := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	boolean := func(name string) bool {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return false
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want true or false", name, v))
		}
		return b
	}
	integer := func(name string, def int) int {
		v := strings.TrimSpace(getenv(name))
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want a whole number", name, v))
		}
		return n
	}
	c := Config{
		PersonioAPIURL:       str("PERSONIO_API_URL", "https://api.personio.de"),
		PersonioClientID:     str("PERSONIO_CLIENT_ID", ""),
		PersonioClientSecret: str("PERSONIO_CLIENT_SECRET", ""),
		WebhookTokens:        splitList(getenv("PERSONIO_WEBHOOK_TOKEN")),
		WebhookInsecure:      boolean("PERSONIO_WEBHOOK_INSECURE_NO_TOKEN"),
		PersonioCompanyID:    str("PERSONIO_COMPANY_ID", ""),
		PersonioWriteEmail:   boolean("PERSONIO_WRITE_BACK_EMAIL"),
		EntraTenantID:        str("ENTRA_TENANT_ID", ""),
		EntraClientID:        str("ENTRA_CLIENT_ID", ""),
		EntraClientSecret:    str("ENTRA_CLIENT_SECRET", ""),
		EntraClientCert:      str("ENTRA_CLIENT_CERTIFICATE", ""),
		EntraCertPassword:    getenv("ENTRA_CLIENT_CERTIFICATE_PASSWORD"),
		EntraRoleGroups:      boolean("ENTRA_ROLE_ASSIGNABLE_GROUPS"),
		EntraLeaveDate:       boolean("ENTRA_RECORD_LEAVE_DATE"),
		EntraCloud:           strings.ToLower(str("ENTRA_CLOUD", "public")),
		EntraAuthority:       str("ENTRA_AUTHORITY_HOST", ""),
		GraphAPIURL:          str("GRAPH_API_URL", ""),
		NATSURL:              str("NATS_URL", ""),
		NATSCreds:            str("NATS_CREDS", ""),
		DataDir:              str("DATA_DIR", "./data"),
		Partitions:           integer("QUEUE_PARTITIONS", 32),
		Replicas:             integer("QUEUE_REPLICAS", 1),
		RulesFile:            str("RULES_FILE", "rules.yaml"),
		ListenAddr:           str("LISTEN_ADDR", ":8080"),
		AdminToken:           str("ADMIN_TOKEN", ""),
		ConsoleSecureCookie:  boolean("CONSOLE_SECURE_COOKIE"),
		MetricsAddr:          str("METRICS_ADDR", ":9090"),
		DryRun:               boolean("DRY_RUN"),
		GuardMaxChanges:      integer("GUARD_MAX_CHANGES", 10),
		ProtectedAccounts:    splitList(getenv("PROTECTED_ACCOUNTS")),
		LogFormat:            strings.ToLower(str("LOG_FORMAT", "json")),
		NotifyMailbox:        str("NOTIFY_MAILBOX", ""),
		NotifyWebhookURL:     str("NOTIFY_WEBHOOK_URL", ""),
	}
	if v := strings.TrimSpace(getenv("SYNC_INTERVAL")); v == "" {
		c.SyncInterval = time.Hour
	} else if d, err := time.ParseDuration(v); err != nil || d < 0 {
		errs = append(errs, fmt.Errorf("SYNC_INTERVAL=%q: want a duration such as 1h or 30m (0 turns the periodic sync off)", v))
	} else {
		c.SyncInterval = d
	}
	if v := strings.TrimSpace(getenv("GUARD_MAX_PERCENT")); v == "" {
		c.GuardMaxPercent = 5
	} else if f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64); err != nil {
		errs = append(errs, fmt.Errorf("GUARD_MAX_PERCENT=%q: want a number such as 5", v))
	} else {
		c.GuardMaxPercent = f
	}
	if v := strings.TrimSpace(getenv("GUARD_MIN_SOURCE_PERCENT")); v == "" {
		c.GuardMinSource = 50
	} else if f, err := strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64); err != nil {
		errs = append(errs, fmt.Errorf("GUARD_MIN_SOURCE_PERCENT=%q: want a number such as 50", v))
	} else {
		c.GuardMinSource = f
	}
	if v := strings.TrimSpace(getenv("GUARD_WINDOW")); v == "" {
		c.GuardWindow = time.Hour
	} else if d, err := time.ParseDuration(v); err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("GUARD_WINDOW=%q: want a duration such as 1h or 30m", v))
	} else {
		c.GuardWindow = d
	}
	if v := strings.TrimSpace(getenv("LOG_LEVEL")); v != "" {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", v))
		}
	}
	return c, errors.Join(errs...)
}

// Validate reports every problem for the given role at once.
func (c Config) Validate(r role) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("LOG_FORMAT=%q: want json or text", c.LogFormat)
	}
	if c.Partitions < 1 || c.Partitions > 1024 {
		bad("QUEUE_PARTITIONS=%d: want 1 to 1024", c.Partitions)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("QUEUE_REPLICAS=%d: want 1 to 5 (3 for a three-node NATS cluster)", c.Replicas)
	} else if c.NATSURL == "" && c.Replicas != 1 {
		bad("QUEUE_REPLICAS=%d needs NATS_URL: the embedded NATS server is a single node", c.Replicas)
	}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if p, err := url.Parse(strings.TrimSpace(u)); err != nil || p.Host == "" {
				bad("NATS_URL: %q is not a URL such as nats://nats:4222 or tls://nats:4222", u)
			}
		}
	}
	if c.NATSCreds != "" {
		if _, err := os.Stat(c.NATSCreds); err != nil {
			bad("NATS_CREDS=%q: %v", c.NATSCreds, err)
		}
	}
	for name, addr := range map[string]string{"LISTEN_ADDR": c.ListenAddr, "METRICS_ADDR": c.MetricsAddr} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("%s=%q: want host:port such as :8080", name, addr)
		}
	}
	if c.AdminToken != "" && len(c.AdminToken) < 16 {
		bad("ADMIN_TOKEN is too short: use at least 16 random characters (for example: openssl rand -hex 32)")
	}
	if c.GuardMaxChanges < 0 {
		bad("GUARD_MAX_CHANGES=%d: want 0 or more", c.GuardMaxChanges)
	}
	if c.GuardMaxPercent < 0 || c.GuardMaxPercent > 100 {
		bad("GUARD_MAX_PERCENT=%v: want 0 to 100", c.GuardMaxPercent)
	}
	if c.GuardMinSource <= 0 || c.GuardMinSource > 100 {
		bad("GUARD_MIN_SOURCE_PERCENT=%v: want more than 0 and at most 100", c.GuardMinSource)
	}
	errs = append(errs, c.validateNotify()...)

	if r.receiver {
		if len(c.WebhookTokens) == 0 && !c.WebhookInsecure {
			bad("PERSONIO_WEBHOOK_TOKEN is empty: set the token registered with the Personio webhook (or PERSONIO_WEBHOOK_INSECURE_NO_TOKEN=true to accept unauthenticated webhooks, never in production)")
		}
		for i, t := range c.WebhookTokens {
			if len(t) < 16 {
				bad("PERSONIO_WEBHOOK_TOKEN: token %d of %d is shorter than 16 characters; use a long random value", i+1, len(c.WebhookTokens))
			}
		}
	}
	if r.worker || r.personio {
		if c.PersonioClientID == "" {
			bad("PERSONIO_CLIENT_ID is empty: create an API credential in Personio (Settings > Integrations > API credentials)")
		}
		if c.PersonioClientSecret == "" {
			bad("PERSONIO_CLIENT_SECRET is empty")
		}
		if u, err := url.Parse(c.PersonioAPIURL); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			bad("PERSONIO_API_URL=%q: want an http(s) URL", c.PersonioAPIURL)
		}
	}
	if r.worker || r.entra {
		if c.EntraTenantID == "" {
			bad("ENTRA_TENANT_ID is empty: the directory (tenant) id of your Entra tenant")
		}
		if c.EntraClientID == "" {
			bad("ENTRA_CLIENT_ID is empty: the application (client) id of the app registration")
		}
		if c.EntraClientSecret != "" && c.EntraClientCert != "" {
			bad("ENTRA_CLIENT_SECRET and ENTRA_CLIENT_CERTIFICATE are both set: choose one")
		}
		switch c.EntraCloud {
		case "public", "usgov", "china":
		default:
			bad("ENTRA_CLOUD=%q: want public, usgov or china", c.EntraCloud)
		}
		for name, v := range map[string]string{"ENTRA_AUTHORITY_HOST": c.EntraAuthority, "GRAPH_API_URL": c.GraphAPIURL} {
			if v == "" {
				continue
			}
			if u, err := url.Parse(v); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
				bad("%s=%q: want an http(s) URL", name, v)
			}
		}
	}
	if r.worker {
		if _, err := os.Stat(c.RulesFile); err != nil {
			bad("RULES_FILE=%q: %v (start from deploy/rules.example.yaml)", c.RulesFile, err)
		}
	}
	return errors.Join(errs...)
}

// LogValue keeps secrets out of logs.
func (c Config) LogValue() slog.Value {
	redact := func(s string) string {
		if s == "" {
			return ""
		}
		return "[redacted]"
	}
	return slog.GroupValue(
		slog.String("personio_api_url", c.PersonioAPIURL),
		slog.String("personio_client_id", c.PersonioClientID),
		slog.String("personio_client_secret", redact(c.PersonioClientSecret)),
		slog.Int("webhook_tokens", len(c.WebhookTokens)),
		slog.Bool("webhook_insecure", c.WebhookInsecure),
		slog.String("personio_company_id", c.PersonioCompanyID),
		slog.String("entra_tenant_id", c.EntraTenantID),
		slog.String("entra_client_id", c.EntraClientID),
		slog.String("entra_client_secret", redact(c.EntraClientSecret)),
		slog.String("entra_client_certificate", c.EntraClientCert),
		slog.String("entra_client_certificate_password", redact(c.EntraCertPassword)),
		slog.Bool("entra_record_leave_date", c.EntraLeaveDate),
		slog.Bool("personio_write_back_email", c.PersonioWriteEmail),
		slog.String("entra_cloud", c.EntraCloud),
		slog.String("entra_authority_host", c.EntraAuthority),
		slog.String("graph_api_url", c.GraphAPIURL),
		slog.String("nats_url", redactURL(c.NATSURL)),
		slog.String("data_dir", c.DataDir),
		slog.String("rules_file", c.RulesFile),
		slog.String("listen_addr", c.ListenAddr),
		slog.Bool("admin_api", c.AdminToken != ""),
		slog.Bool("console_secure_cookie", c.ConsoleSecureCookie),
		slog.String("metrics_addr", c.MetricsAddr),
		slog.Duration("sync_interval", c.SyncInterval),
		slog.Bool("dry_run", c.DryRun),
		slog.String("notify_mailbox", c.NotifyMailbox),
		slog.String("notify_webhook_url", redact(c.NotifyWebhookURL)),
	)
}

// redactURL hides user:password in NATS URLs.
func redactURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("redacted")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// newLogger builds the process logger from the configuration.
func newLogger(c Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
