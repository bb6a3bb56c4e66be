package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/personio-entra/personio-entra/queue"
)

func init() {
	register("deadletters", command{
		summary: "inspect and re-drive failed work: list | show SEQ | redrive SEQ|--all | purge SEQ",
		run:     runDeadletters,
	})
}

const deadlettersUsage = `Usage:
  personio-entra deadletters list [--json]
  personio-entra deadletters show SEQ [--json]
  personio-entra deadletters redrive SEQ | --all
  personio-entra deadletters purge SEQ

SEQ is the sequence shown by list. redrive queues the work again (the handler
sees reason "redrive") and removes it from the dead letters; purge removes it
without re-running. With an embedded NATS server (NATS_URL empty) this command
opens DATA_DIR itself, so run it while the service is stopped, or use the
admin API of the running service.`

func runDeadletters(ctx context.Context, env *environment, args []string) error {
	fs := newFlags("deadletters", env)
	fs.Usage = func() { fmt.Fprintln(env.stdout, deadlettersUsage) }
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "redrive every dead letter")
	// Flags may follow the positional arguments (show 12 --json).
	pos, err := parseFlags(fs, args, len(args)) // the action checks its own arguments
	if err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return usageError{msg: ue.msg + "\n" + deadlettersUsage}
		}
		return err
	}
	if len(pos) == 0 {
		return usageError{msg: "missing action\n" + deadlettersUsage}
	}
	action, rest := pos[0], pos[1:]
	var seq uint64
	needSeq := action == "show" || action == "purge" || (action == "redrive" && !*all)
	switch {
	case action != "list" && action != "show" && action != "redrive" && action != "purge":
		return usageError{msg: fmt.Sprintf("unknown action %q\n%s", action, deadlettersUsage)}
	case *all && action != "redrive":
		return usageError{msg: "--all only goes with redrive"}
	case needSeq && len(rest) != 1:
		return usageError{msg: fmt.Sprintf("%s needs exactly one SEQ\n%s", action, deadlettersUsage)}
	case !needSeq && len(rest) != 0:
		return usageError{msg: fmt.Sprintf("%s takes no SEQ, got %q", action, rest)}
	}
	if needSeq {
		n, err := strconv.ParseUint(rest[0], 10, 64)
		if err != nil || n == 0 {
			return usageError{msg: fmt.Sprintf("SEQ %q is not a positive whole number", rest[0])}
		}
		seq = n
	}

	cfg, err := loadConfig(env.getenv)
	if err = errors.Join(err, cfg.Validate(role{})); err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	// Diagnostics go to stderr, as text unless configured otherwise; stdout
	// carries only the result.
	logger := newLogger(cfg, env.stderr)
	if cfg.LogLevel < slog.LevelWarn {
		cfg.LogLevel = slog.LevelWarn
		logger = newLogger(cfg, env.stderr)
	}
	q, closeQueue, err := openQueue(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeQueue()

	switch action {
	case "list":
		dls, err := q.DeadLetters(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			if dls == nil {
				dls = []queue.DeadLetter{}
			}
			return writeJSONOut(env.stdout, dls)
		}
		printDeadLetters(env.stdout, dls)
	case "show":
		d, err := q.DeadLetter(ctx, seq)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSONOut(env.stdout, d)
		}
		printDeadLetter(env.stdout, d)
	case "redrive":
		if *all {
			n, err := q.RedriveAll(ctx)
			fmt.Fprintf(env.stdout, "re-driven %d dead letter(s)\n", n)
			return err
		}
		if err := q.Redrive(ctx, seq); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "re-driven dead letter %d\n", seq)
	case "purge":
		if err := q.PurgeDeadLetter(ctx, seq); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "purged dead letter %d\n", seq)
	}
	return nil
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

func deadLetterSubject(d queue.DeadLetter) string {
	switch {
	case d.PersonID != "":
		return "person " + d.PersonID
	case d.EmploymentID != "":
		return "employment " + d.EmploymentID
	}
	return d.OriginalSubject
}

func printDeadLetters(w io.Writer, dls []queue.DeadLetter) {
	if len(dls) == 0 {
		fmt.Fprintln(w, "no dead letters")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tFOR\tWORK\tREASON\tATTEMPTS\tERROR")
	for _, d := range dls {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\n", d.Sequence, d.Time.UTC().Format(time.RFC3339),
			deadLetterSubject(d), d.WorkReason, d.Reason, d.Attempts, oneLine(d.Error, 80))
	}
	tw.Flush()
}

func printDeadLetter(w io.Writer, d queue.DeadLetter) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("Sequence:", strconv.FormatUint(d.Sequence, 10))
	row("Time:", d.Time.UTC().Format(time.RFC3339))
	row("For:", deadLetterSubject(d))
	row("Work:", d.WorkReason)
	row("Reason:", d.Reason)
	row("Attempts:", strconv.Itoa(d.Attempts))
	row("Error:", oneLine(d.Error, 0))
	row("Original:", fmt.Sprintf("%s seq %d (%s)", d.OriginalStream, d.OriginalSequence, d.OriginalSubject))
	tw.Flush()
	if len(d.Data) > 0 {
		fmt.Fprintf(w, "Data:\n%s\n", d.Data)
	}
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if max > 0 && len(s) > max {
		return s[:max-1] + "…"
	}
	return s
}
