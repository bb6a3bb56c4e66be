package main

// End-to-end check that a 404 from Personio is confirmed before anyone is
// offboarded, plus helpers for the neighbouring holes_*_e2e tests.

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// adminRequest calls the admin API with the stack's token.
func adminRequest(t *testing.T, s *stack, method, path string) (int, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, s.adminURL+path, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// enabledInGroups returns people with an enabled account that is a member
// of at least one group, by employeeId.
func enabledInGroups(s *stack) []entratest.User {
	var out []entratest.User
	for _, u := range s.entra.Users() {
		if u.EmployeeID == "" || !u.AccountEnabled || u.Deleted || len(groupsOf(s, u.ID)) == 0 {
			continue
		}
		if _, ok := s.personio.Person(u.EmployeeID); ok {
			out = append(out, u)
		}
	}
	slices.SortFunc(out, func(a, b entratest.User) int { return strings.Compare(a.EmployeeID, b.EmployeeID) })
	return out
}

// reconcileErrors reads personio_entra_reconciles_total{outcome="error"}.
func reconcileErrors(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "personio_entra_reconciles_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == "error" {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// A 404 from the v1 single read alone does not offboard anyone: the v2
// person read must agree. A person Personio really deleted is still
// offboarded.
func TestNotFoundNeedsConfirmation(t *testing.T) {
	s := newTestStack(t, stackOptions{})
	convergeE2E(t, s)
	people := enabledInGroups(s)
	if len(people) < 2 {
		t.Fatalf("the sample company needs two enabled accounts in groups, has %d", len(people))
	}
	present, deleted := people[0], people[1]
	groupsBefore := groupsOf(s, present.ID)

	// Only v1 GET /company/employees/{id} misses the person.
	s.personio.SetV1EmployeeNotFound(present.EmployeeID)

	status, body, err := adminRequest(t, s, http.MethodGet, "/plan/"+present.EmployeeID)
	if err != nil {
		t.Fatal(err)
	}
	if status == http.StatusOK || !strings.Contains(string(body), "404") {
		t.Errorf("plan for a person only the v1 read misses: status %d, want an error naming the unconfirmed 404: %s", status, body)
	}

	errsBefore := reconcileErrors(t)
	if status, body, err := adminRequest(t, s, http.MethodPost, "/sync/"+present.EmployeeID); err != nil || status != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s %v", status, body, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for reconcileErrors(t) <= errsBefore {
		if time.Now().After(deadline) {
			t.Fatal("the reconcile of the person only v1 misses did not fail within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	u, found := s.userByEmployeeID(present.EmployeeID)
	if !found || !u.AccountEnabled {
		t.Fatalf("person %s exists in Personio (only the v1 single read says 404) but the account was offboarded: %+v found=%t", present.EmployeeID, u, found)
	}
	if got := groupsOf(s, u.ID); !slices.Equal(got, groupsBefore) {
		t.Errorf("groups changed: %v → %v", groupsBefore, got)
	}

	// A person deleted in Personio: both reads agree, the account is offboarded.
	s.personio.DeletePerson(deleted.EmployeeID)
	eventually(t, s, deleted.EmployeeID, "disabled", func(u entratest.User, found bool) bool { return found && !u.AccountEnabled })

	// The fault ends: the retried work converges without a change.
	s.personio.SetV1EmployeeNotFound()
	convergeE2E(t, s)
	if u, _ := s.userByEmployeeID(present.EmployeeID); !u.AccountEnabled {
		t.Errorf("account of %s disabled after the fault ended", present.EmployeeID)
	}
}
