package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/personio-entra/personio-entra/provisioning/personio"
)

func init() {
	register("webhook", command{
		summary: "register, list or test the Personio webhook (register --url URL | list | test [--id ID])",
		run:     runWebhook,
	})
}

const webhookUsage = `Usage:
  personio-entra webhook register --url https://host/webhooks/personio
      create the subscription, or update the one with this URL, and enable it;
      the token is the first value of PERSONIO_WEBHOOK_TOKEN
  personio-entra webhook list
  personio-entra webhook test [--id ID | --url URL]
      ask Personio to send a ping event (default: the only webhook)`

func runWebhook(ctx context.Context, env *environment, args []string) error {
	if len(args) == 0 {
		return usageError{webhookUsage}
	}
	sub, rest := args[0], args[1:]
	fs := newFlags("webhook "+sub, env)
	hookURL := fs.String("url", "", "webhook URL")
	id := fs.String("id", "", "webhook id")
	switch sub {
	case "register", "list", "test":
	default:
		return usageError{fmt.Sprintf("unknown webhook command %q\n%s", sub, webhookUsage)}
	}
	if _, err := parseFlags(fs, rest, 0); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return usageError{fmt.Sprintf("%s\n%s", ue.msg, webhookUsage)}
		}
		return err
	}
	if sub == "register" && *hookURL == "" {
		return usageError{"webhook register needs --url (the public HTTPS address of /webhooks/personio)"}
	}

	cfg, err := loadConfig(env.getenv)
	err = errors.Join(err, cfg.Validate(role{personio: true}))
	if sub == "register" && len(cfg.WebhookTokens) == 0 {
		err = errors.Join(err, errors.New("PERSONIO_WEBHOOK_TOKEN is empty: set a long random value (for example: openssl rand -hex 32); Personio sends it verbatim in Authorization"))
	}
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	client, err := personio.New(personio.Config{
		BaseURL: cfg.PersonioAPIURL, ClientID: cfg.PersonioClientID, ClientSecret: cfg.PersonioClientSecret,
		Logger: newLogger(cfg, env.stderr).With("component", "personio"),
	})
	if err != nil {
		return err
	}

	switch sub {
	case "register":
		// The first token is the current one; later ones are only still
		// accepted by the receiver during a rotation.
		w, err := client.RegisterWebhook(ctx, *hookURL, cfg.WebhookTokens[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "webhook %s %s: %s, events %s\n", w.ID, w.Status, w.URL, strings.Join(w.EnabledEvents, ", "))
		return nil
	case "list":
		hooks, err := client.ListWebhooks(ctx)
		if err != nil {
			return err
		}
		if len(hooks) == 0 {
			fmt.Fprintln(env.stdout, "no webhooks registered")
			return nil
		}
		tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATUS\tAUTH\tURL\tEVENTS")
		for _, w := range hooks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", w.ID, w.Status, w.AuthType, w.URL, strings.Join(w.EnabledEvents, ","))
		}
		return tw.Flush()
	default: // test
		target := *id
		if target == "" {
			hooks, err := client.ListWebhooks(ctx)
			if err != nil {
				return err
			}
			var ids []string
			for _, w := range hooks {
				if *hookURL == "" || w.URL == *hookURL {
					ids = append(ids, w.ID)
				}
			}
			switch len(ids) {
			case 0:
				return errors.New("no matching webhook; run `personio-entra webhook register --url …` first")
			case 1:
				target = ids[0]
			default:
				return usageError{fmt.Sprintf("%d webhooks match; choose one with --id (%s)", len(ids), strings.Join(ids, ", "))}
			}
		}
		if err := client.PingWebhook(ctx, target); err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "ping sent to webhook %s; the receiver logs it on arrival\n", target)
		return nil
	}
}
