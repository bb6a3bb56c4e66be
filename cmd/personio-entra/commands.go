package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/queue"
	"github.com/personio-entra/personio-entra/rules"
)

func init() {
	register("plan", command{summary: "dry run: the desired state and the changes for one employee (--employee ID [--explain]) or everyone (--all), or what candidate rules would change (--all --rules NEW.yaml)", run: runPlan})
	register("check", command{summary: "validate configuration and rules, and test access to Personio and Entra (--rules NEW.yaml: then preview them)", run: runCheck})
	register("sync", command{summary: "reconcile one employee (--employee ID) or everyone (--all) now, through the queue", run: runSync})
	register("audit", command{summary: "show the audit log (--employee ID, --limit N, --json)", run: runAudit})
	register("approve", command{summary: "list (--list) or approve (ID) change sets the safeguard held back", run: runApprove})
}

// newFlags returns a flag set that reports errors as usage errors.
func newFlags(name string, env *environment) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	return fs
}

// errHelpShown ends a command after -h printed its flags (exit status 0).
var errHelpShown = errors.New("help shown")

// parseFlags is how every command reads its command line: flags may come
// before or after the positional arguments, of which at most maxArgs are
// allowed; it returns them. -h prints the flags and ends the command.
func parseFlags(fs *flag.FlagSet, args []string, maxArgs int) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && a != "-":
			flags = append(flags, a)
			// A flag given as "-name value" takes the next argument along
			// (boolean flags never do).
			name := strings.TrimLeft(a, "-")
			if f := fs.Lookup(name); f != nil && !strings.Contains(name, "=") && !isBoolFlag(f) && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	if err := fs.Parse(flags); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelpShown
		}
		return nil, usageError{err.Error()}
	}
	if len(pos) > maxArgs {
		return nil, usageError{fmt.Sprintf("unexpected argument %q", pos[maxArgs])}
	}
	return pos, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// loadFor loads and validates the configuration for a role.
func loadFor(env *environment, r role) (Config, error) {
	cfg, err := loadConfig(env.getenv)
	if err != nil {
		return cfg, fmt.Errorf("configuration:\n%w", indent(err))
	}
	if err := cfg.Validate(r); err != nil {
		return cfg, fmt.Errorf("configuration:\n%w", indent(err))
	}
	return cfg, nil
}

// indent renders a joined error one problem per line.
func indent(err error) error {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = "  - " + l
	}
	return errors.New(strings.Join(lines, "\n"))
}

func runPlan(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("plan", env)
	id := fs.String("employee", "", "Personio person id")
	all := fs.Bool("all", false, "plan everyone (bulk reads, no writes)")
	asJSON := fs.Bool("json", false, "print JSON")
	explain := fs.Bool("explain", false, "with --employee: the rule behind every value, group and change")
	candidatePath := fs.String("rules", "", "with --all: preview these candidate rules against the current ones (applies nothing)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if (*id == "") == !*all {
		return usageError{"give exactly one of --employee ID or --all"}
	}
	if *explain && *id == "" {
		return usageError{"--explain needs --employee ID"}
	}
	if *candidatePath != "" && !*all {
		return usageError{"--rules previews a rules change for everyone: use it with --all"}
	}
	var candidate *rules.Rules
	if *candidatePath != "" {
		// Validated before anything else: every problem with file:line:col.
		r, err := loadCandidate(*candidatePath)
		if err != nil {
			return err
		}
		candidate = r
	}
	cfg, err := loadFor(env, role{worker: true})
	if err != nil {
		return err
	}
	return plan(ctx, cfg, planRequest{personID: *id, explain: *explain, json: *asJSON, candidate: candidate},
		nil, appOptions{}, newLogger(cfg, env.stderr), env.stdout)
}

// planRequest is what `plan` was asked: one person (personID, optionally
// explained), everyone (personID ""), or a rules preview (candidate).
type planRequest struct {
	personID  string
	explain   bool
	json      bool
	candidate *rules.Rules
}

// plan prints the plan, the explanation or the rules preview; it applies
// nothing. The explanation and the preview read the state bucket
// (ownership, the safeguard's window) through the queue: q, or the one the
// configuration names when q is nil.
func plan(ctx context.Context, cfg Config, req planRequest, q *queue.Queue, opts appOptions, log *slog.Logger, stdout io.Writer) error {
	if req.explain || req.candidate != nil {
		var closeQ func()
		var err error
		if q, closeQ, err = queueOrOpen(ctx, cfg, log, q); err != nil {
			return err
		}
		defer closeQ()
	}
	a, err := newApp(ctx, cfg, log, q, opts)
	if err != nil {
		return err
	}
	switch {
	case req.candidate != nil:
		pv, err := provisioning.PreviewRules(ctx, a.engine, req.candidate)
		if err != nil {
			return err
		}
		if req.json {
			return writeJSON(stdout, pv)
		}
		printPreview(stdout, pv)
		return nil
	case req.explain:
		x, err := a.engine.Explain(ctx, req.personID)
		if err != nil {
			return err
		}
		if req.json {
			return writeJSON(stdout, x)
		}
		printExplained(stdout, x)
		return nil
	}
	var plans []provisioning.Plan
	if req.personID == "" {
		plans, err = a.engine.Drift(ctx, nil)
	} else {
		var p provisioning.Plan
		p, err = a.engine.PlanFor(ctx, req.personID)
		plans = []provisioning.Plan{p}
	}
	if err != nil {
		return err
	}
	if req.json {
		return writeJSON(stdout, plans)
	}
	printPlans(stdout, plans, req.personID == "")
	return nil
}

func printPlans(w io.Writer, plans []provisioning.Plan, all bool) {
	if all && len(plans) == 0 {
		fmt.Fprintln(w, "No drift: Entra matches the rules for everyone.")
		return
	}
	for _, p := range plans {
		fmt.Fprintf(w, "person %s  phase=%s", p.PersonID, p.Phase)
		if p.UPN != "" {
			fmt.Fprintf(w, "  account=%s", p.UPN)
		}
		if p.Reason != "" {
			fmt.Fprintf(w, "  (%s)", p.Reason)
		}
		fmt.Fprintln(w)
		if !all {
			d := p.Desired
			fmt.Fprintf(w, "  desired: exists=%t enabled=%t groups=%v manager=%s upn candidates=%v\n",
				d.Exists, d.AccountEnabled, d.Groups, d.ManagerPersonID, d.UPNCandidates)
			if !d.NextTransition.IsZero() {
				fmt.Fprintf(w, "  next transition: %s\n", d.NextTransition.Format("2006-01-02 15:04 MST"))
			}
		}
		if len(p.Changes) == 0 {
			fmt.Fprintln(w, "  no changes")
		}
		for _, c := range p.Changes {
			fmt.Fprintf(w, "  - %s\n", c)
		}
		for _, n := range p.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
	if all {
		fmt.Fprintf(w, "%d people drift.\n", len(plans))
	}
}

func runCheck(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("check", env)
	offline := fs.Bool("offline", false, "check configuration and rules only, without calling Personio or Entra")
	candidate := fs.String("rules", "", "candidate rules: check them too and preview what they would change (not with --offline: checked only)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	var problems []string
	cfg, err := loadConfig(env.getenv)
	if err != nil {
		problems = append(problems, strings.Split(err.Error(), "\n")...)
	}
	if *candidate != "" {
		return checkAndPreview(ctx, cfg, problems, *candidate, *offline, nil, appOptions{}, env.stdout)
	}
	return check(ctx, cfg, problems, *offline, appOptions{}, env.stdout)
}

// check validates cfg and the rules and, unless offline, calls Personio
// and Graph; it prints one line per check and every problem found.
func check(ctx context.Context, cfg Config, problems []string, offline bool, opts appOptions, stdout io.Writer) error {
	r := role{worker: true}
	if err := cfg.Validate(r); err != nil {
		problems = append(problems, strings.Split(err.Error(), "\n")...)
	}
	var rs *rules.Rules
	var rerr error
	if _, err := os.Stat(cfg.RulesFile); err != nil {
		rerr = err // Validate has reported it already
	} else if rs, rerr = rules.Load(cfg.RulesFile); rerr != nil {
		problems = append(problems, strings.Split(rerr.Error(), "\n")...)
	} else {
		fmt.Fprintf(stdout, "ok   rules %s: %d managed groups, time zone %s\n", cfg.RulesFile, len(rs.ManagedGroups()), rs.TimeZone())
	}
	if len(problems) == 0 && !offline {
		log := newLogger(cfg, io.Discard)
		a, err := newApp(ctx, cfg, log, nil, opts)
		if err != nil {
			problems = append(problems, err.Error())
		} else {
			needs := provisioning.PermissionNeeds(rs, provisioning.PermissionOptions{LeaveDate: cfg.EntraLeaveDate, RoleAssignableGroups: cfg.EntraRoleGroups, NotifyMailbox: cfg.NotifyMailbox})
			passed, found := provisioning.Preflight{Personio: a.source, Entra: a.dir, Directory: a.dir, Rules: rs, Permissions: a.dir, Needs: needs}.Run(ctx)
			for _, p := range passed {
				fmt.Fprintln(stdout, "ok   "+p)
			}
			problems = append(problems, found...)
		}
	}
	if len(problems) > 0 {
		for _, p := range problems {
			if p = strings.TrimSpace(p); p != "" {
				fmt.Fprintf(stdout, "FAIL %s\n", p)
			}
		}
		return fmt.Errorf("%d problem(s) found", len(problems))
	}
	fmt.Fprintln(stdout, "All checks passed.")
	return nil
}

func runSync(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("sync", env)
	id := fs.String("employee", "", "Personio person id to reconcile")
	all := fs.Bool("all", false, "run a complete full sync now (drifting people are queued for the workers)")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if (*id == "") == !*all {
		return usageError{"give exactly one of --employee ID or --all"}
	}
	cfg, err := loadFor(env, role{worker: *all})
	if err != nil {
		return err
	}
	log := newLogger(cfg, env.stderr)
	q, closeQ, err := openQueue(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeQ()
	if *id != "" {
		if err := q.Enqueue(ctx, *id, "cli"); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "person %s queued; a worker reconciles it now (see `personio-entra audit --employee %s`)\n", *id, *id)
		return nil
	}
	a, err := newApp(ctx, cfg, log, q, appOptions{})
	if err != nil {
		return err
	}
	rep, err := a.runSync(ctx, provisioning.SyncOptions{Complete: true}, "cli") // recorded for the console
	if err != nil {
		return err
	}
	if rep.Skipped {
		return errors.New("another process is running a full sync; try again when it is done")
	}
	fmt.Fprintf(env.stdout, "full sync: %d employees, %d accounts (%d owned), %d drifting, %d queued, %d schedules booked\n",
		rep.Employees, rep.Accounts, rep.Owned, rep.Drifting, rep.Enqueued, rep.Scheduled)
	if rep.Collapsed {
		fmt.Fprintf(env.stdout, "SOURCE COLLAPSED: Personio returned %d people for %d owned accounts; nothing destructive is applied\n", rep.Employees, rep.Owned)
	}
	if len(rep.Unowned) > 0 {
		fmt.Fprintf(env.stdout, "UNOWNED: %d accounts carry an employeeId Personio does not know and were not created or adopted by personio-entra; left alone: %s\n",
			len(rep.Unowned), strings.Join(rep.Unowned[:min(len(rep.Unowned), 10)], ", "))
	}
	if rep.Guarded {
		fmt.Fprintf(env.stdout, "SAFEGUARD: %d destructive changes held back; review with `personio-entra approve --list`, release with `personio-entra approve %s`\n", rep.Destructive, rep.ApprovalID)
	}
	return nil
}

func runAudit(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("audit", env)
	id := fs.String("employee", "", "Personio person id (empty: everyone)")
	limit := fs.Int("limit", 50, "newest N records")
	asJSON := fs.Bool("json", false, "print JSON lines")
	if _, err := parseFlags(fs, args, 0); err != nil {
		return err
	}
	if *limit < 1 {
		return usageError{"--limit must be at least 1"}
	}
	cfg, err := loadFor(env, role{})
	if err != nil {
		return err
	}
	q, closeQ, err := openQueue(ctx, cfg, newLogger(cfg, env.stderr))
	if err != nil {
		return err
	}
	defer closeQ()
	recs, err := q.ReadAudit(ctx, *id, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		for _, r := range recs {
			fmt.Fprintln(env.stdout, string(r))
		}
		return nil
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tPERSON\tTRIGGER\tACCOUNT\tCHANGE\tRESULT\tNOTE")
	for _, raw := range recs {
		var r provisioning.AuditRecord
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("decode audit record: %w", err)
		}
		note := r.Note
		if r.Error != "" {
			note = strings.TrimSpace(note + " " + r.Error)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.Format("2006-01-02 15:04:05"), r.PersonID, r.Trigger, r.UPN, r.Summary, r.Result, note)
	}
	return tw.Flush()
}

func runApprove(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("approve", env)
	list := fs.Bool("list", false, "list pending approvals")
	pos, err := parseFlags(fs, args, 1)
	if err != nil {
		return err
	}
	if *list == (len(pos) == 1) {
		return usageError{"use `approve --list` or `approve ID`"}
	}
	cfg, err := loadFor(env, role{worker: true})
	if err != nil {
		return err
	}
	log := newLogger(cfg, env.stderr)
	q, closeQ, err := openQueue(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeQ()
	a, err := newApp(ctx, cfg, log, q, appOptions{})
	if err != nil {
		return err
	}
	if *list {
		aps, err := a.syncer.Approvals(ctx)
		if err != nil {
			return err
		}
		if len(aps) == 0 {
			fmt.Fprintln(env.stdout, "No pending approvals.")
		}
		for _, ap := range aps {
			fmt.Fprintf(env.stdout, "%s  created %s  %d people, %d destructive changes (threshold %d)\n",
				ap.ID, ap.Created.Format("2006-01-02 15:04"), len(ap.People), ap.Destructive, ap.Threshold)
			for _, r := range ap.Reasons {
				fmt.Fprintf(env.stdout, "  why: %s\n", r)
			}
			for _, s := range ap.Summary {
				fmt.Fprintf(env.stdout, "    %s\n", s)
			}
		}
		return nil
	}
	ap, err := a.syncer.Approve(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "approved %s: %d people queued; the workers apply their changes now\n", ap.ID, len(ap.People))
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
