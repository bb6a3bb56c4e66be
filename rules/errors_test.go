package rules

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const goodRules = `time_zone: Europe/Berlin
domain: example.com
upn:
  candidates: ["{first}.{last}"]
attributes:
  displayName: employee.first_name
  employeeId: employee.person_id
  jobTitle: employee.position
groups:
  - group: Finance
    when: employee.department.name == "Finance"
  - group: Women
    when: employee.gender == "FEMALE"
`

// TestLoadErrors: each broken file yields a problem naming the file, the
// line (and column) of the mistake, and the fix.
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name      string
		from, to  string // replace in goodRules
		line, col int
		message   string
		fix       string
	}{
		{"unknown top-level key", "domain: example.com", "domian: example.com", 2, 1, `unknown key "domian"`, `did you mean "domain"?`},
		{"unknown employee field", "employee.position", "employee.positon", 8, 21, "undefined field 'positon'", `did you mean "position"?`},
		{"type error: list where text is needed", "jobTitle: employee.position", "jobTitle: employee.cost_centers", 8, 13, "returns list(hr.CostCenter), want string", "list.join"},
		{"type error: condition is not bool", `when: employee.gender == "FEMALE"`, `when: employee.gender`, 13, 11, "returns string, want bool", "return bool"},
		{"bad CEL syntax", `employee.department.name == "Finance"`, `employee.department.name = "Finance"`, 11, 36, "Syntax error", "== for equality"},
		{"unknown Entra property", "jobTitle:", "jobtitle:", 8, 3, `unknown Entra property "jobtitle"`, `did you mean "jobTitle"?`},
		{"unknown function", "employee.first_name\n", "frist(employee.first_name)\n", 6, 21, "undeclared reference to 'frist'", "helper listed in rules/README.md"},
		{"bad time zone", "Europe/Berlin", "Europe/Berlinn", 1, 12, `unknown time zone "Europe/Berlinn"`, "IANA time zone name"},
		{"duplicate group", "group: Women", "group: finance", 12, 12, `duplicate group "finance" (first on line 10)`, "merge the conditions"},
		{"empty candidates", `["{first}.{last}"]`, `[]`, 4, 15, "upn.candidates must be a non-empty list", "{first}.{last}"},
		{"unknown placeholder", `{first}.{last}`, `{first}.{surname}`, 4, 16, "unknown placeholder {surname}", "placeholders are {first} {last}"},
		{"bad policy", "jobTitle: employee.position", "jobTitle: {value: employee.position, policy: sometimes}", 8, 48, `unknown policy "sometimes"`, "use always, on_create or never"},
		{"bad matching key", "groups:", "matching: [employeeId, upn=email]\ngroups:", 9, 24, `unknown matching property "upn"`, "userPrincipalName"},
		{"missing displayName", "  displayName: employee.first_name\n", "", 5, 1, "attributes must set displayName", "add displayName"},
		{"bad lifecycle number", "groups:", "lifecycle: {create_days_before_start: -3}\ngroups:", 9, 39, "create_days_before_start must be a whole number from 0 to 365", "whole number"},
		{"invalid domain", "domain: example.com", "domain: exa mple", 2, 9, `domain "exa mple" is not valid`, "example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(goodRules, tt.from, tt.to, 1)
			if src == goodRules {
				t.Fatalf("replacement %q not found", tt.from)
			}
			_, err := LoadBytes("rules.yaml", []byte(src))
			var re *Error
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want *Error", err)
			}
			for _, p := range re.Problems {
				if strings.Contains(p.Message, tt.message) {
					if p.File != "rules.yaml" || p.Line != tt.line || p.Column != tt.col || !strings.Contains(p.Fix, tt.fix) {
						t.Errorf("got %s\nwant rules.yaml:%d:%d: ...%s... — ...%s...", p, tt.line, tt.col, tt.message, tt.fix)
					}
					want := fmt.Sprintf("rules.yaml:%d:%d: ", tt.line, tt.col)
					if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), " — ") {
						t.Errorf("error text %q lacks %q and a fix", err, want)
					}
					return
				}
			}
			t.Errorf("no problem mentions %q in:\n%v", tt.message, err)
		})
	}
	if _, err := LoadBytes("rules.yaml", []byte(goodRules)); err != nil {
		t.Fatalf("the unbroken file must load: %v", err)
	}
}

// TestLoadReportsEveryProblem: one load lists all mistakes, in file order.
func TestLoadReportsEveryProblem(t *testing.T) {
	src := strings.NewReplacer(
		"Europe/Berlin", "Mars/Olympus",
		"employee.position", "employee.title",
		`employee.gender == "FEMALE"`, `employee.gender ==`,
	).Replace(goodRules) + "colour: blue\n"
	_, err := LoadBytes("all.yaml", []byte(src))
	var re *Error
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *Error", err)
	}
	var lines []int
	for _, p := range re.Problems {
		lines = append(lines, p.Line)
	}
	if fmt.Sprint(lines) != "[1 8 13 14]" {
		t.Errorf("problems on lines %v, want [1 8 13 14]:\n%v", lines, err)
	}
}

func TestLoadYAMLSyntaxAndEmpty(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"", "all.yaml:1:1: the rules file is empty"},
		{"time_zone: UTC\ndomain: [unclosed\n", "did not find expected ',' or ']' — fix the YAML syntax"},
		{"- a\n- b\n", "the rules file must be a mapping"},
	} {
		_, err := LoadBytes("all.yaml", []byte(tt.src))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadBytes(%q) = %v, want %q", tt.src, err, tt.want)
		}
	}
}

// TestCheckGroups: unknown, unmanageable and duplicate groups are named with
// their line.
func TestCheckGroups(t *testing.T) {
	src := goodRules + `  - group: All Staff
    when: "true"
  - group: 6f1c0d2e-0000-0000-0000-000000000001
    when: employee.department.name == "Finance"
`
	r, err := LoadBytes("groups.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.ManagedGroups(); fmt.Sprint(got) != "[Finance Women All Staff 6f1c0d2e-0000-0000-0000-000000000001]" {
		t.Fatalf("managed groups %q", got)
	}
	directory := map[string][2]string{
		"Finance":                              {"6f1c0d2e-0000-0000-0000-000000000001", ""},
		"6f1c0d2e-0000-0000-0000-000000000001": {"6f1c0d2e-0000-0000-0000-000000000001", ""},
		"Women":                                {"id-women", "mail-enabled security group: Graph cannot change its members"},
	}
	var calls []string
	resolve := func(_ context.Context, key string) (string, string, error) {
		calls = append(calls, key)
		g, ok := directory[key]
		if !ok {
			return "", "", errors.New("directory: not found")
		}
		return g[0], g[1], nil
	}
	err = r.CheckGroups(context.Background(), resolve)
	var re *Error
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *Error", err)
	}
	want := []string{
		`groups.yaml:12:12: group "Women" cannot be managed through Microsoft Graph: mail-enabled security group`,
		`groups.yaml:14:12: group "All Staff" cannot be resolved in Entra: directory: not found — create the group`,
		`groups.yaml:16:12: group "6f1c0d2e-0000-0000-0000-000000000001" is the same group (6f1c0d2e-0000-0000-0000-000000000001) as "Finance" on line 10`,
	}
	if len(re.Problems) != len(want) {
		t.Fatalf("problems:\n%v", err)
	}
	for i, w := range want {
		if !strings.HasPrefix(re.Problems[i].String(), w) {
			t.Errorf("problem %d:\n got %s\nwant %s...", i, re.Problems[i], w)
		}
	}
	if len(calls) != 4 {
		t.Errorf("resolved %q, want each group once", calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.CheckGroups(ctx, resolve); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled check: %v", err)
	}
	ok := func(_ context.Context, key string) (string, string, error) { return "id-" + key, "", nil }
	if err := r.CheckGroups(context.Background(), ok); err != nil {
		t.Errorf("all groups fine: %v", err)
	}
}
