package console

import (
	"slices"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/rules"
)

// Person is everything the person page shows: the engine's explanation
// (Personio record, desired state with the rule behind every value, the
// Entra account, its managed groups, ownership and the plan) and the audit
// history.
type Person struct {
	provisioning.Explained
	Audit []provisioning.AuditRecord
}

// attrRow is one mapped Entra property: what the rules want, what Entra
// has, and the rule.
type attrRow struct {
	Property string
	Want     string
	Policy   rules.Policy
	Have     string
	HasAcct  bool
	Differs  bool
	Computed bool // false: the rule gave no usable value (see the warnings)
	Rule     *rules.Origin
}

// groupRow is one managed group: whether the person belongs in it, whether
// the account is in it, and the rule that decided it.
type groupRow struct {
	rules.GroupDecision
	Has     bool
	HasAcct bool
}

type personView struct {
	Person
	Name          string
	Explanation   *rules.Explanation
	AttributeRows []attrRow
	GroupRows     []groupRow
}

func viewPerson(p Person) personView {
	v := personView{Person: p, Name: personName(p), Explanation: p.Desired.Explain}
	x := p.Desired.Explain
	props := map[string]bool{}
	for k := range p.Desired.Attributes {
		props[k] = true
	}
	if x != nil {
		for k := range x.Attributes {
			props[k] = true
		}
	}
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		row := attrRow{Property: k, HasAcct: p.Account != nil}
		if val, ok := p.Desired.Attributes[k]; ok {
			row.Want, row.Policy, row.Computed = val.Value, val.Policy, true
		}
		if p.Account != nil {
			row.Have = p.Account.Attributes[k]
			row.Differs = row.Computed && row.Policy == rules.Always && row.Have != row.Want
		}
		if x != nil {
			if o, ok := x.Attributes[k]; ok {
				row.Rule = &o
			}
		}
		v.AttributeRows = append(v.AttributeRows, row)
	}
	if x != nil {
		for _, g := range x.Groups {
			v.GroupRows = append(v.GroupRows, groupRow{GroupDecision: g, Has: slices.Contains(p.Groups, g.Group), HasAcct: p.Account != nil})
		}
	}
	return v
}

func personName(p Person) string {
	if p.Employee == nil {
		return "person " + p.PersonID
	}
	return displayName(*p.Employee)
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

func personTitle(p Person) string { return personName(p) + " (" + p.PersonID + ")" }
