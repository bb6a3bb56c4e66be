//go:build !nosimulators

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

func init() {
	register("demo", command{
		summary: "everything local: embedded NATS, Personio and Entra simulators with a sample company; plays a joiner, a mover and a leaver",
		run:     runDemo,
	})
}

func runDemo(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("demo", env)
	listen := fs.String("listen", demoListen, "webhook receiver and admin API address (loopback; when the default is busy the demo picks a free port)")
	metrics := fs.String("metrics", demoMetrics, "metrics, /healthz and /readyz address (loopback; when the default is busy the demo picks a free port)")
	latency := fs.Duration("latency", 20*time.Millisecond, "simulated latency of every Personio and Graph call")
	dataDir := fs.String("data", "", "where NATS stores its data (default: a temporary directory removed at exit)")
	story := fs.Bool("story", true, "play a joiner, a mover and a leaver after the first sync")
	logLevel := fs.String("log-level", "warn", "log level of the product's logs on stderr (debug, info, warn, error)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	for _, a := range []string{*listen, *metrics} {
		host, _, err := net.SplitHostPort(a)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return usageError{fmt.Sprintf("%q: the demo listens on loopback addresses only (such as 127.0.0.1:8080)", a)}
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", *logLevel)}
	}
	dir := *dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "personio-entra-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	out := env.stdout
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	// Ctrl-C (or SIGTERM) at any moment is a normal end: whatever failed
	// because of it is not worth reporting.
	stop := func(err error) error {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}

	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var ls boundListeners
	for _, l := range []struct {
		name, addr, what string
		ln               *net.Listener
	}{
		{"listen", *listen, "webhook receiver and admin API", &ls.web},
		{"metrics", *metrics, "metrics", &ls.metrics},
	} {
		ln, err := bindDemo(l.name, l.addr, l.what, given[l.name], say)
		if err != nil {
			ls.close()
			return err
		}
		*l.ln = ln
	}

	say("Starting: embedded NATS JetStream, Personio simulator (54-person sample company), Entra simulator (Graph + token endpoint) ...")
	s, err := startStack(ctx, stackOptions{
		dataDir: dir, listeners: ls, latency: *latency, syncInterval: 10 * time.Minute,
		guardMax: 10, logger: slog.New(slog.NewTextHandler(env.stderr, &slog.HandlerOptions{Level: lvl})),
		rules: dayOneRules, notifyMailbox: demoMailbox,
		seed: func(es *entratest.Server) {
			seedDemoMailbox(es)
			// An account made by hand before the product arrived: it is
			// matched by UPN = Personio email and adopted, not duplicated.
			es.AddUser(entratest.User{UserPrincipalName: "katharina.vogel@example.com", DisplayName: "Katharina Vogel", AccountEnabled: true})
			// A mail-enabled security group nobody asked us to manage: never touched.
			es.AddGroup(entratest.Group{DisplayName: "All Staff (mail)", MailEnabled: true, SecurityEnabled: true, GroupTypes: []string{}, Mail: "all@example.com"})
		},
	})
	if err != nil {
		return stop(err)
	}
	defer func() {
		say("Stopping ...")
		s.Close()
	}()
	say("  webhook receiver  %s  (registered in the Personio simulator, token-protected)", s.webhookURL)
	say("  admin API         %s  (Authorization: Bearer %s)", s.adminURL, s.adminToken)
	say("  console           http://%s/ui/  (sign in with the admin token)", s.cfg.ListenAddr)
	link, err := s.app.console.SignInLink(ctx, demoSignInTTL)
	if err != nil {
		return stop(err)
	}
	say("  one-click sign-in http://%s%s  (one use, valid %s)", s.cfg.ListenAddr, link, demoSignInTTL)
	say("  metrics           http://%s/metrics", s.cfg.MetricsAddr)
	say("  Personio sim      %s    Entra sim %s", s.personio.URL(), s.entra.GraphURL())

	say("\nFirst full sync: reading everyone from Personio and Entra, queueing whoever drifts ...")
	start := time.Now()
	if err := waitConverged(ctx, s, 2*time.Minute, say); err != nil {
		return stop(err)
	}
	say("  converged in %s: %s", time.Since(start).Round(100*time.Millisecond), entraSummary(s))

	if *story {
		if err := playStory(ctx, s, say); err != nil {
			return stop(err)
		}
	}
	say("\nServing until Ctrl-C. Try:")
	say("  curl -s -H 'Authorization: Bearer %s' %s/audit?employee=1019 | head -40", s.adminToken, s.adminURL)
	say("  curl -s -H 'Authorization: Bearer %s' %s/plan/1037", s.adminToken, s.adminURL)
	say("  curl -s http://%s/metrics | grep personio_entra_changes_total", s.cfg.MetricsAddr)
	select {
	case <-ctx.Done():
		return nil
	case <-s.stopped():
		return fmt.Errorf("the product stopped: %w", s.err())
	}
}

// The demo's default addresses. When one of them is busy the demo listens
// on a free loopback port instead; an address given on the command line must
// be free.
const (
	demoListen  = "127.0.0.1:8080"
	demoMetrics = "127.0.0.1:9090"
	// demoSignInTTL is how long the demo's one-click console link works.
	demoSignInTTL = 10 * time.Minute
)

// bindDemo binds addr for the demo's listener set with --flagName. A busy default
// address falls back to a free loopback port (and says so); a busy address the
// user gave is an error that names the reason.
func bindDemo(flagName, addr, what string, given bool, say func(string, ...any)) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	if given {
		return nil, fmt.Errorf("--%s %s: cannot listen there: %s (another program may be using it: stop it, choose a free loopback address, or leave --%s out and the demo picks one)",
			flagName, addr, bindReason(err), flagName)
	}
	ln, err2 := net.Listen("tcp", "127.0.0.1:0")
	if err2 != nil {
		return nil, fmt.Errorf("%s: cannot listen on %s (%s) nor on a free loopback port: %w", what, addr, bindReason(err), err2)
	}
	say("Note: %s is not available (%s): serving the %s on %s instead (choose with --%s).", addr, bindReason(err), what, ln.Addr(), flagName)
	return ln, nil
}

// bindReason is the operating system's word for a failed bind, such as
// "address already in use".
func bindReason(err error) string {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return se.Err.Error()
	}
	return err.Error()
}

// waitConverged waits until the queue has drained (no work queued or in
// flight) and a bulk plan of everyone shows no drift. However long that
// takes on a slow machine, it keeps waiting while either count moves, and
// gives up only when neither has changed for stall, saying what is stuck.
// say, when not nil, receives progress lines.
func waitConverged(ctx context.Context, s *stack, stall time.Duration, say func(string, ...any)) error {
	const (
		poll        = 500 * time.Millisecond
		reportEvery = 2 * time.Second  // at most this often when the counts move
		remindEvery = 15 * time.Second // and at least this often while waiting
	)
	start := time.Now()
	queued, drifting := -1, -1
	var (
		drift          []provisioning.Plan
		lastErr        error
		lastChange     = start
		lastReport     time.Time
		reportedQ      = -1
		reportedD      = -1
		backlogChecked bool
	)
	for {
		q, qerr := s.app.q.Backlog(ctx)
		if qerr != nil {
			lastErr = fmt.Errorf("queue backlog: %w", qerr)
		} else {
			backlogChecked = true
		}
		d := drifting
		if plans, err := s.app.engine.Drift(ctx, nil); err != nil {
			lastErr = fmt.Errorf("drift: %w", err)
		} else {
			drift = drift[:0]
			for _, p := range plans {
				if len(p.Changes) > 0 {
					drift = append(drift, p)
				}
			}
			d = len(drift)
		}
		if qerr == nil && q != queued || d != drifting {
			lastChange = time.Now()
		}
		if qerr == nil {
			queued = q
		}
		drifting = d
		if backlogChecked && queued == 0 && drifting == 0 {
			return nil
		}
		now := time.Now()
		if say != nil && now.Sub(start) >= reportEvery && drifting >= 0 && queued >= 0 &&
			((now.Sub(lastReport) >= reportEvery && (queued != reportedQ || drifting != reportedD)) || now.Sub(lastReport) >= remindEvery) {
			say("  %s", progressLine(drifting, queued))
			lastReport, reportedQ, reportedD = now, queued, drifting
		}
		if now.Sub(lastChange) >= stall {
			return fmt.Errorf("no progress for %s: %s%s (see the logs with --log-level info)", stall, progressLine(drifting, queued), stuckDetail(drift, lastErr))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopped():
			return fmt.Errorf("the product stopped: %w", s.err())
		case <-time.After(poll):
		}
	}
}

func progressLine(drifting, queued int) string {
	people, msgs := "people", "messages"
	if drifting == 1 {
		people = "person"
	}
	if queued == 1 {
		msgs = "message"
	}
	d, q := fmt.Sprint(drifting), fmt.Sprint(queued)
	if drifting < 0 {
		d = "unknown number of"
	}
	if queued < 0 {
		q = "unknown number of"
	}
	return fmt.Sprintf("%s %s still drifting, %s %s queued or in flight", d, people, q, msgs)
}

// stuckDetail names the first people who still drift and what they wait for.
func stuckDetail(drift []provisioning.Plan, lastErr error) string {
	var b strings.Builder
	for i, p := range drift {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(drift)-i)
			break
		}
		var changes []string
		for _, c := range p.Changes {
			changes = append(changes, c.String())
		}
		fmt.Fprintf(&b, "; person %s: %s", p.PersonID, strings.Join(changes, ", "))
		if len(p.Notes) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(p.Notes, "; "))
		}
	}
	if lastErr != nil {
		fmt.Fprintf(&b, "; last error: %v", lastErr)
	}
	return b.String()
}

func entraSummary(s *stack) string {
	enabled, disabled := 0, 0
	for _, u := range s.entra.Users() {
		if u.EmployeeID == "" || u.Deleted {
			continue
		}
		if u.AccountEnabled {
			enabled++
		} else {
			disabled++
		}
	}
	var groups []string
	for name, id := range s.groups {
		groups = append(groups, fmt.Sprintf("%s=%d", name, len(s.entra.Members(id))))
	}
	slices.Sort(groups)
	return fmt.Sprintf("%d accounts enabled, %d disabled (pre-hires and leavers); group members: %s", enabled, disabled, strings.Join(groups, ", "))
}

// playStory changes people in the Personio simulator; each change reaches
// the product as a real webhook.
func playStory(ctx context.Context, s *stack, say func(string, ...any)) error {
	today := time.Now().In(s.app.rules.TimeZone()) // dates are read in the rules' time zone
	date := func(days int) string { return today.AddDate(0, 0, days).Format(time.DateOnly) }

	say("\nJoiner: Zoë Ångström-Łukasiewicz starts in Finance in 7 days (Personio fires person.created) ...")
	s.personio.UpsertPerson(personiotest.Person{
		ID: "2001", FirstName: "Zoë", LastName: "Ångström-Łukasiewicz", Email: "zoe.private@example.org", Gender: "FEMALE",
		CustomAttributes: []personiotest.CustomAttribute{{ID: "dynamic_9001", Label: "Work phone", Type: "STRING", Value: "+49 89 1234567"}},
		Employments: []personiotest.Employment{{
			ID: "e2001", Status: "ONBOARDING", Type: "INTERNAL", Position: personiotest.Position{Title: "Financial Analyst"},
			Supervisor: &personiotest.IDRef{ID: "1001"}, Office: &personiotest.IDRef{ID: "o1"},
			OrgUnits:    []personiotest.OrgUnitRef{{Type: "department", ID: "d1"}},
			LegalEntity: &personiotest.IDRef{ID: "le1"}, CostCenters: []personiotest.CostCenterRef{{ID: "cc-d1", Weight: 100}},
			EmploymentStartDate: date(7),
		}},
	})
	u, err := waitUser(ctx, s, "2001", func(u entratest.User) bool { return len(groupsOf(s, u.ID)) >= 2 && u.ManagerID != "" })
	if err != nil {
		return err
	}
	say("  created %s (enabled=%t until the start date), groups %v, manager set, hire date %v",
		u.UserPrincipalName, u.AccountEnabled, groupsOf(s, u.ID), u.Properties["employeeHireDate"])

	say("\nMover: Renée Jensen moves from Marketing to Sales as Account Executive (person.updated) ...")
	s.personio.UpdatePerson("1006", func(p *personiotest.Person) {
		e := &p.Employments[0]
		e.OrgUnits = []personiotest.OrgUnitRef{{Type: "department", ID: "d2"}}
		e.Position.Title = "Account Executive"
	})
	u, err = waitUser(ctx, s, "1006", func(u entratest.User) bool {
		return u.Properties["department"] == "Sales" && slices.Contains(groupsOf(s, u.ID), "Sales") && !slices.Contains(groupsOf(s, u.ID), "Marketing")
	})
	if err != nil {
		return err
	}
	say("  %s: department %v, job title %v, groups %v", u.UserPrincipalName, u.Properties["department"], u.Properties["jobTitle"], groupsOf(s, u.ID))

	say("\nLeaver: Luca Hoffmann's last working day is moved to yesterday (employment.updated) ...")
	s.personio.UpdatePerson("1019", func(p *personiotest.Person) {
		e := &p.Employments[0]
		e.Termination = &personiotest.Termination{TerminationDate: date(-1), LastWorkingDay: date(-1), Type: "EMPLOYEE", Reason: "New job"}
		e.Status = "INACTIVE"
	})
	u, err = waitUser(ctx, s, "1019", func(u entratest.User) bool { return !u.AccountEnabled && len(groupsOf(s, u.ID)) == 0 })
	if err != nil {
		return err
	}
	say("  %s: disabled, sessions revoked at %s, removed from every managed group", u.UserPrincipalName, u.SignInSessionsValidFrom.Format(time.TimeOnly))
	if err := playDayOne(ctx, s, say); err != nil {
		return err
	}
	say("\nNow: %s", entraSummary(s))
	return nil
}

func waitUser(ctx context.Context, s *stack, personID string, ok func(entratest.User) bool) (entratest.User, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if u, found := s.userByEmployeeID(personID); found && ok(u) {
			return u, nil
		}
		select {
		case <-ctx.Done():
			return entratest.User{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	u, _ := s.userByEmployeeID(personID)
	return u, fmt.Errorf("person %s did not reach the expected state within 30s; account now: %+v", personID, u)
}

// groupsOf names the managed groups the user is in.
func groupsOf(s *stack, userID string) []string {
	var out []string
	for name, id := range s.groups {
		if slices.Contains(s.entra.Members(id), userID) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
