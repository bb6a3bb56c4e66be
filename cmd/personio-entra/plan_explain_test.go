package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/deploy"
	"github.com/personio-entra/personio-entra/provisioning"
)

// exampleLine is the line of the example rules that contains text (once).
func exampleLine(t *testing.T, text string) int {
	t.Helper()
	src := string(deploy.RulesExample)
	if strings.Count(src, text) != 1 {
		t.Fatalf("%q occurs %d times in the example rules", text, strings.Count(src, text))
	}
	return strings.Count(src[:strings.Index(src, text)], "\n") + 1
}

// candidateRules are the example rules with the title in upper case and
// the Sales group no longer for anyone.
func candidateRules(t *testing.T) (string, []byte) {
	t.Helper()
	src := strings.Replace(string(deploy.RulesExample), "jobTitle: employee.position", "jobTitle: upper(employee.position)", 1)
	src = strings.Replace(src, `when: employee.department.name == "Sales"`, `when: "false"`, 1)
	path := filepath.Join(t.TempDir(), "candidate.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, []byte(src)
}

// TestPlanExplainAndPreview: `plan --employee ID --explain`, `plan --all
// --rules NEW.yaml` (text and JSON), `check --rules NEW.yaml` and the admin
// API's explain and preview, through the real wiring against the
// simulators; none of them writes to Entra.
func TestPlanExplainAndPreview(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	convergeE2E(t, s)
	company := s.personio.Company()
	for i := range company.Persons {
		if company.Persons[i].ID == "1003" {
			company.Persons[i].Employments[0].Position.Title = "Chief Revenue Officer"
		}
	}
	s.personio.SetCompany(company)
	ctx := context.Background()
	opts := appOptions{entraHTTP: s.entra.Client()}
	writes := s.entra.Requests().Writes
	rulesFile := regexp.QuoteMeta(s.cfg.RulesFile)
	titleLine := strconv.Itoa(exampleLine(t, "  jobTitle: employee.position"))
	salesLine := strconv.Itoa(exampleLine(t, "  - group: Sales"))
	financeLine := strconv.Itoa(exampleLine(t, "  - group: Finance"))

	t.Run("plan --employee --explain", func(t *testing.T) {
		var out bytes.Buffer
		if err := plan(ctx, s.cfg, planRequest{personID: "1003", explain: true}, s.app.q, opts, discardLogger(), &out); err != nil {
			t.Fatal(err)
		}
		text := out.String()
		t.Logf("plan --employee 1003 --explain:\n%s", text)
		for _, re := range []string{
			`(?m)^  phase = active ← ` + rulesFile + `:\d+:\d+ lifecycle`,
			`(?m)^    why: employed since .*\(decided by status ACTIVE`,
			`(?m)^  account: \S+@example\.com \(.*\), enabled=true, owned`,
			`(?m)^    jobTitle = "Chief Revenue Officer" ← ` + rulesFile + `:` + titleLine + `:\d+ attributes\.jobTitle: employee\.position$`,
			`(?m)^    member +Sales ← ` + rulesFile + `:` + salesLine + `:\d+ groups\[1\] "Sales": employee\.department\.name == "Sales"$`,
			`(?m)^    not member Finance ← ` + rulesFile + `:` + financeLine + `:\d+ groups\[0\] "Finance"`,
			`(?m)^  in Entra now: member of .*Sales`,
			`(?m)^    - update jobTitle ← ` + rulesFile + `:` + titleLine + `:\d+ attributes\.jobTitle`,
		} {
			if !regexp.MustCompile(re).MatchString(text) {
				t.Errorf("output does not match %s:\n%s", re, text)
			}
		}
		out.Reset()
		if err := plan(ctx, s.cfg, planRequest{personID: "1003", explain: true, json: true}, s.app.q, opts, discardLogger(), &out); err != nil {
			t.Fatal(err)
		}
		var x provisioning.Explained
		if err := json.Unmarshal(out.Bytes(), &x); err != nil {
			t.Fatal(err)
		}
		if o := x.Desired.Explain.Attributes["jobTitle"]; strconv.Itoa(o.Line) != titleLine || x.Employee == nil || x.Account == nil ||
			x.Ownership.State != provisioning.OwnershipCreated || len(x.Plan.Changes) != 1 || x.Plan.Changes[0].Rule == nil {
			t.Errorf("JSON explanation: %s", out.String())
		}
	})

	candidatePath, candidateYAML := candidateRules(t)
	inSales := len(s.entra.Members(s.groups["Sales"]))
	if inSales == 0 {
		t.Fatal("nobody is in Sales: the preview test proves nothing")
	}

	t.Run("plan --all --rules", func(t *testing.T) {
		var out bytes.Buffer
		cand, err := loadCandidate(candidatePath)
		if err != nil {
			t.Fatal(err)
		}
		if err := plan(ctx, s.cfg, planRequest{candidate: cand, json: true}, s.app.q, opts, discardLogger(), &out); err != nil {
			t.Fatal(err)
		}
		var pv provisioning.RulesPreview
		if err := json.Unmarshal(out.Bytes(), &pv); err != nil {
			t.Fatal(err)
		}
		if pv.Totals.GroupsLost != inSales || pv.Safeguard.LoseAccess != inSales || pv.Totals.AttributesChanged == 0 {
			t.Errorf("preview: %d memberships lost, %d lose access, want %d (the Sales members); %d attribute changes",
				pv.Totals.GroupsLost, pv.Safeguard.LoseAccess, inSales, pv.Totals.AttributesChanged)
		}
		if held := inSales > pv.Safeguard.Remaining; pv.Safeguard.Held != held || pv.Safeguard.Threshold != 10 {
			t.Errorf("safeguard %+v, want held=%t for %d people and a budget of 10", pv.Safeguard, held, inSales)
		}
		out.Reset()
		if err := plan(ctx, s.cfg, planRequest{candidate: cand}, s.app.q, opts, discardLogger(), &out); err != nil {
			t.Fatal(err)
		}
		t.Logf("plan --all --rules:\n%s", out.String())
		for _, re := range []string{
			`Rules preview: ` + rulesFile + ` → ` + regexp.QuoteMeta(candidatePath),
			`(?m)^person 1003 .*\n(  .*\n)*  - group Sales\n`,
			`(?m)^  jobTitle: "Chief Revenue Officer" → "CHIEF REVENUE OFFICER"`,
			`(?m)^  loses access: remove from group Sales`,
			`(?m)^Totals: \d+ people differ; memberships \+0 -` + strconv.Itoa(inSales),
			`(?m)^  Sales +\+0 -` + strconv.Itoa(inSales),
			`(?m)^Safeguard: (would be held for approval|within the safeguard's budget): ` + strconv.Itoa(inSales) + ` people would lose access`,
		} {
			if !regexp.MustCompile(re).MatchString(out.String()) {
				t.Errorf("output does not match %s:\n%s", re, out.String())
			}
		}
	})

	t.Run("check --rules", func(t *testing.T) {
		var out bytes.Buffer
		if err := checkAndPreview(ctx, s.cfg, nil, candidatePath, false, s.app.q, opts, &out); err != nil {
			t.Fatalf("check: %v\n%s", err, out.String())
		}
		for _, want := range []string{"ok   candidate rules", "All checks passed.", "Rules preview:", "- group Sales", "Safeguard:"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("invalid candidate rules", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		src := strings.Replace(string(deploy.RulesExample), "jobTitle: employee.position", "jobTitle: employee.positon", 1)
		if err := os.WriteFile(bad, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"plan", "--all", "--rules", bad}} {
			var stdout, stderr bytes.Buffer
			env := &environment{getenv: func(string) string { return "" }, stdout: &stdout, stderr: &stderr}
			if code := runMain(ctx, env, args); code != 1 {
				t.Errorf("%v: exit %d, want 1\n%s", args, code, stderr.String())
			}
			if !regexp.MustCompile(regexp.QuoteMeta(bad) + `:` + titleLine + `:\d+: .*positon`).MatchString(stderr.String()) {
				t.Errorf("%v: stderr lacks the problem with file:line:col:\n%s", args, stderr.String())
			}
		}
		var out bytes.Buffer
		if err := checkAndPreview(ctx, s.cfg, nil, bad, false, s.app.q, opts, &out); err == nil || !strings.Contains(out.String(), "FAIL "+bad+":"+titleLine+":") {
			t.Errorf("check --rules with broken rules: %v\n%s", err, out.String())
		}
	})

	t.Run("admin API", func(t *testing.T) {
		for _, path := range []string{"/explain/1003", "/plan/1003?explain=1"} {
			status, body, err := adminRequest(t, s, http.MethodGet, path)
			var x provisioning.Explained
			if err != nil || status != http.StatusOK || json.Unmarshal(body, &x) != nil || x.Desired.Explain == nil ||
				strconv.Itoa(x.Desired.Explain.Attributes["jobTitle"].Line) != titleLine {
				t.Errorf("GET %s: %d %v %.400s", path, status, err, body)
			}
		}
		post := func(body []byte) (int, []byte) {
			req, _ := http.NewRequest(http.MethodPost, s.adminURL+"/preview?name=candidate.yaml", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+s.adminToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		status, body := post(candidateYAML)
		var pv provisioning.RulesPreview
		if status != http.StatusOK || json.Unmarshal(body, &pv) != nil || pv.Totals.GroupsLost != inSales || pv.CandidateRules != "candidate.yaml" {
			t.Errorf("POST /admin/preview: %d %.400s", status, body)
		}
		status, body = post([]byte(strings.Replace(string(candidateYAML), "time_zone: Europe/Berlin", "time_zone: Europe/Berln", 1)))
		var bad struct {
			Error    string `json:"error"`
			Problems []struct {
				File string `json:"file"`
				Line int    `json:"line"`
				Text string `json:"text"`
			} `json:"problems"`
		}
		if status != http.StatusBadRequest || json.Unmarshal(body, &bad) != nil || len(bad.Problems) != 1 ||
			bad.Problems[0].File != "candidate.yaml" || strconv.Itoa(bad.Problems[0].Line) != strconv.Itoa(exampleLine(t, "time_zone: Europe/Berlin")) {
			t.Errorf("POST /admin/preview with broken rules: %d %s", status, body)
		}
	})

	if w := s.entra.Requests().Writes; w != writes {
		t.Errorf("explain and preview made %d writes to Entra", w-writes)
	}
	u, _ := s.userByEmployeeID("1003")
	if u.Properties["jobTitle"] == "Chief Revenue Officer" {
		t.Error("the explanation applied the title")
	}
}
