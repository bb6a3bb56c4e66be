package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// plan shows the desired state and the changes and applies nothing.
func TestPlanAppliesNothing(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	convergeE2E(t, s)
	// Change Personio without a webhook: only a plan (or a sync) sees it.
	company := s.personio.Company()
	for i := range company.Persons {
		if company.Persons[i].ID == "1003" {
			company.Persons[i].Employments[0].Position.Title = "Chief Revenue Officer"
			company.Persons[i].Employments[0].OrgUnits = []personiotest.OrgUnitRef{{Type: "department", ID: "d1"}}
		}
	}
	s.personio.SetCompany(company)
	writes := s.entra.Requests().Writes

	p, err := s.app.engine.PlanFor(context.Background(), "1003")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printPlans(&out, nil, false)
	printPlans(&out, []provisioning.Plan{p}, false)
	text := out.String()
	for _, want := range []string{"person 1003  phase=active", "desired: exists=true enabled=true", "update department, employeeOrgData/division, jobTitle", "add to group Finance", "remove from group Sales"} {
		if !strings.Contains(text, want) {
			t.Errorf("plan output lacks %q:\n%s", want, text)
		}
	}
	all, err := s.app.engine.Drift(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].PersonID != "1003" {
		t.Errorf("plan --all: %d drifting, want only 1003: %+v", len(all), all)
	}
	out.Reset()
	printPlans(&out, all, true)
	if !strings.Contains(out.String(), "1 people drift.") {
		t.Errorf("plan --all output:\n%s", out.String())
	}
	if w := s.entra.Requests().Writes; w != writes {
		t.Errorf("plan made %d writes", w-writes)
	}
	u, _ := s.userByEmployeeID("1003")
	if u.Properties["jobTitle"] == "Chief Revenue Officer" {
		t.Error("plan applied the title")
	}
}
