package conformance

import (
	"errors"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
)

// SourceFixture is one Personio under test. The suite only reads; the
// optional hook deletes a person to check that the two reads agree.
type SourceFixture struct {
	Source provisioning.Source
	// Unknown is a person id the account does not have ("987654321" when
	// empty).
	Unknown string
	// Remove deletes a listed person from the account. Nil skips the check
	// that a deleted person is not found and confirmed deleted (a real
	// account is never written).
	Remove func(t *testing.T, personID string)
}

var validStatus = map[string]bool{"ONBOARDING": true, "ACTIVE": true, "LEAVE": true, "INACTIVE": true}

// RunSource runs the Source contract (provisioning.Source) against the
// sources newSrc returns: one fresh fixture per sub-test.
func RunSource(t *testing.T, newSrc func(t *testing.T) SourceFixture) {
	tests := []struct {
		name string
		run  func(t *testing.T, f SourceFixture)
	}{
		{"ListEmployees", testList},
		{"GetMatchesList", testGetMatchesList},
		{"UnknownPerson", testUnknownPerson},
		{"ConfirmDeletedOfExisting", testConfirmExisting},
		{"DeletedPerson", testDeletedPerson},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newSrc(t)
			if f.Source == nil {
				t.Fatal("conformance: the fixture needs a Source")
			}
			if f.Unknown == "" {
				f.Unknown = "987654321"
			}
			tc.run(t, f)
		})
	}
}

func list(t *testing.T, f SourceFixture) []model.Employee {
	t.Helper()
	all, err := f.Source.ListEmployees(ctxFor(t))
	if err != nil {
		t.Fatalf("ListEmployees: %v", err)
	}
	if len(all) == 0 {
		t.Fatal("ListEmployees returned nobody; the suite needs at least one person")
	}
	return all
}

// ListEmployees returns everyone once, each with an id and a known status.
func testList(t *testing.T, f SourceFixture) {
	seen := map[string]bool{}
	for _, e := range list(t, f) {
		if e.PersonID == "" {
			t.Errorf("employee without id: %+v", e)
			continue
		}
		if !validStatus[e.Status] {
			t.Errorf("employee %s: status %q is not one of ONBOARDING, ACTIVE, LEAVE, INACTIVE", e.PersonID, e.Status)
		}
		if seen[e.PersonID] {
			t.Errorf("employee %s listed twice", e.PersonID)
		}
		seen[e.PersonID] = true
		if f.Unknown == e.PersonID {
			t.Fatalf("the fixture's unknown person %s is listed", e.PersonID)
		}
	}
}

// GetEmployee of a listed person reads what the list read.
func testGetMatchesList(t *testing.T, f SourceFixture) {
	ctx := ctxFor(t)
	all := list(t, f)
	for _, want := range []model.Employee{all[0], all[len(all)-1]} {
		got, err := f.Source.GetEmployee(ctx, want.PersonID)
		if err != nil {
			t.Fatalf("GetEmployee(%s): %v", want.PersonID, err)
		}
		if got.PersonID != want.PersonID || got.Email != want.Email || got.Status != want.Status || got.FirstName != want.FirstName ||
			got.LastName != want.LastName || got.Department != want.Department || got.SupervisorID != want.SupervisorID ||
			got.StartDate != want.StartDate || got.LastWorkingDay != want.LastWorkingDay {
			t.Errorf("GetEmployee %+v\ndiffers from the list entry %+v", got, want)
		}
	}
}

// An unknown person is model.ErrPersonNotFound, and the second read confirms it.
func testUnknownPerson(t *testing.T, f SourceFixture) {
	ctx := ctxFor(t)
	if _, err := f.Source.GetEmployee(ctx, f.Unknown); !errors.Is(err, model.ErrPersonNotFound) {
		t.Errorf("GetEmployee(%s): want model.ErrPersonNotFound, got %v", f.Unknown, err)
	}
	gone, err := f.Source.ConfirmDeleted(ctx, f.Unknown)
	if err != nil || !gone {
		t.Errorf("ConfirmDeleted(%s) = %t, %v; want true, nil", f.Unknown, gone, err)
	}
	if _, err := f.Source.ConfirmDeleted(ctx, "../"+f.Unknown); err == nil {
		t.Error("ConfirmDeleted accepted an invalid person id")
	}
}

// ConfirmDeleted of a person who exists is false with no error.
func testConfirmExisting(t *testing.T, f SourceFixture) {
	p := list(t, f)[0]
	gone, err := f.Source.ConfirmDeleted(ctxFor(t), p.PersonID)
	if err != nil || gone {
		t.Errorf("ConfirmDeleted(%s) of a listed person = %t, %v; want false, nil", p.PersonID, gone, err)
	}
}

// A deleted person is not found, confirmed deleted and no longer listed.
func testDeletedPerson(t *testing.T, f SourceFixture) {
	if f.Remove == nil {
		t.Skip("no Remove hook: the source is not written")
	}
	ctx := ctxFor(t)
	all := list(t, f)
	p := all[len(all)-1]
	f.Remove(t, p.PersonID)
	if _, err := f.Source.GetEmployee(ctx, p.PersonID); !errors.Is(err, model.ErrPersonNotFound) {
		t.Errorf("GetEmployee of a deleted person: want model.ErrPersonNotFound, got %v", err)
	}
	if gone, err := f.Source.ConfirmDeleted(ctx, p.PersonID); err != nil || !gone {
		t.Errorf("ConfirmDeleted of a deleted person = %t, %v; want true, nil", gone, err)
	}
	after, err := f.Source.ListEmployees(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range after {
		if e.PersonID == p.PersonID {
			t.Errorf("deleted person %s still listed", p.PersonID)
		}
	}
	if len(after) != len(all)-1 {
		t.Errorf("ListEmployees after one deletion: %d people, want %d", len(after), len(all)-1)
	}
}
