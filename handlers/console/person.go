package console

import (
	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
)

// Person is everything the person page shows.
type Person struct {
	Employee model.Employee
	// Plan is what a sync would change now; Plan.Desired is the state the
	// rules ask for.
	Plan provisioning.Plan
	// Account is the current Entra account (nil when there is none) and
	// Groups the managed groups it is a member of (display names).
	Account *provisioning.User
	Groups  []string
	// Audit is the person's audit history.
	Audit []provisioning.AuditRecord
}

type personView struct {
	Person
	Name string
}

func viewPerson(p Person) personView {
	return personView{Person: p, Name: displayName(p.Employee)}
}

func displayName(e model.Employee) string {
	first := e.FirstName
	if e.PreferredName != "" {
		first = e.PreferredName
	}
	switch {
	case first != "" && e.LastName != "":
		return first + " " + e.LastName
	case first+e.LastName != "":
		return first + e.LastName
	}
	return "person " + e.PersonID
}

func personTitle(p Person) string { return displayName(p.Employee) + " (" + p.Employee.PersonID + ")" }
