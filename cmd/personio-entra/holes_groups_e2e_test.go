package main

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/entra/entratest"
)

// A managed group deleted and recreated under the same display name is
// resolved again: the next reconcile puts the member into the new group.
func TestRecreatedManagedGroupResolvedAgain(t *testing.T) {
	// An account that exists before the start (not created by this
	// process, so a 404 naming it is not waited out as replication delay).
	s := newTestStack(t, stackOptions{seed: func(es *entratest.Server) {
		es.AddUser(entratest.User{UserPrincipalName: "katharina.vogel@example.com", EmployeeID: "1001", DisplayName: "Katharina Vogel", AccountEnabled: true})
	}})
	convergeE2E(t, s)
	var key, oldID string
	member, _ := s.userByEmployeeID("1001")
	for _, name := range groupsOf(s, member.ID) {
		if name != "Women" && key == "" {
			key, oldID = name, s.groups[name]
		}
	}
	if key == "" {
		t.Fatal("no managed security group with a member")
	}
	if !s.entra.DeleteGroup(oldID) {
		t.Fatalf("delete group %s", oldID)
	}
	newID := s.entra.AddGroup(entratest.Group{DisplayName: key, SecurityEnabled: true, GroupTypes: []string{}})

	if status, body, err := adminRequest(t, s, http.MethodPost, "/sync/"+member.EmployeeID); err != nil || status != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s %v", status, body, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(s.entra.Members(newID), member.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("person %s did not land in the recreated group %q (%s) within 30s; the engine kept the deleted group's id %s",
				member.EmployeeID, key, newID, oldID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
