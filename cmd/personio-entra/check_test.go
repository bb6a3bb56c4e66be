package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

func TestCheckAgainstSimulators(t *testing.T) {
	s := newTestStack(t, stackOptions{syncInterval: -1, seed: func(es *entratest.Server) {
		es.AddGroup(entratest.Group{DisplayName: "All Staff (mail)", MailEnabled: true, SecurityEnabled: true, GroupTypes: []string{}, Mail: "all@example.com"})
	}})
	opts := appOptions{entraHTTP: s.entra.Client()}

	t.Run("everything fine", func(t *testing.T) {
		var out bytes.Buffer
		if err := check(context.Background(), s.cfg, nil, false, opts, &out); err != nil {
			t.Fatalf("check: %v\n%s", err, out.String())
		}
		for _, want := range []string{"ok   rules", "ok   Personio API", "ok   Microsoft Graph", "every managed group", "All checks passed."} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("unknown and mail-enabled groups named with their lines", func(t *testing.T) {
		rules := strings.Replace(string(deploy.RulesExample), "groups:\n",
			"groups:\n  - group: All Staff (mail)\n    when: 'true'\n  - group: Does Not Exist\n    when: 'true'\n", 1)
		cfg := s.cfg
		cfg.RulesFile = filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(cfg.RulesFile, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err := check(context.Background(), cfg, nil, false, opts, &out)
		if err == nil {
			t.Fatalf("check passed:\n%s", out.String())
		}
		text := out.String()
		for _, re := range []string{
			`FAIL .*rules\.yaml:\d+:\d+: group "All Staff \(mail\)" cannot be managed .*mail-enabled`,
			`FAIL .*rules\.yaml:\d+:\d+: group "Does Not Exist" cannot be resolved`,
		} {
			if !regexp.MustCompile(re).MatchString(text) {
				t.Errorf("output does not match %s:\n%s", re, text)
			}
		}
	})

	t.Run("broken rules: every problem with file and line, offline", func(t *testing.T) {
		rules := strings.Replace(string(deploy.RulesExample), "jobTitle: employee.position", "jobTitle: employee.positon", 1)
		rules = strings.Replace(rules, "time_zone: Europe/Berlin", "time_zone: Europe/Berln", 1)
		cfg := s.cfg
		cfg.RulesFile = filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(cfg.RulesFile, []byte(rules), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		if err := check(context.Background(), cfg, nil, true, opts, &out); err == nil {
			t.Fatalf("check passed:\n%s", out.String())
		}
		for _, re := range []string{`rules\.yaml:\d+:\d+: .*positon`, `rules\.yaml:\d+:\d+: .*Europe/Berln`} {
			if !regexp.MustCompile(re).MatchString(out.String()) {
				t.Errorf("output does not match %s:\n%s", re, out.String())
			}
		}
	})
}

func TestCheckReportsEveryConfigProblem(t *testing.T) {
	var out, errOut bytes.Buffer
	env := &environment{getenv: func(k string) string {
		return map[string]string{"RULES_FILE": "/nonexistent/rules.yaml", "ENTRA_CLOUD": "mars", "SYNC_INTERVAL": "often"}[k]
	}, stdout: &out, stderr: &errOut}
	if code := runMain(context.Background(), env, []string{"check", "--offline"}); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	for _, want := range []string{"SYNC_INTERVAL", "PERSONIO_CLIENT_ID is empty", "ENTRA_TENANT_ID is empty", "ENTRA_CLOUD=\"mars\"", "RULES_FILE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
