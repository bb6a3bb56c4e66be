package rules

import "go.yaml.in/yaml/v3"

// NameChangePolicy says what a name change does to an existing account's
// user principal name (upn.on_name_change).
type NameChangePolicy string

const (
	// KeepUPN leaves the sign-in name as it is: only the name properties
	// (displayName, givenName, surname) follow Personio. The default.
	KeepUPN NameChangePolicy = "keep"
	// RenameUPN gives the account a new user principal name (and mail
	// nickname) from the candidates when its current one no longer fits
	// the new name.
	RenameUPN NameChangePolicy = "rename"
)

// OnNameChange returns the upn.on_name_change policy (KeepUPN by default).
func (r *Rules) OnNameChange() NameChangePolicy {
	if r.onNameChange == "" {
		return KeepUPN
	}
	return r.onNameChange
}

func (l *loader) onNameChange(n *yaml.Node) {
	s, ok := l.str(n, "upn.on_name_change")
	if !ok {
		return
	}
	switch NameChangePolicy(s) {
	case KeepUPN, RenameUPN:
		l.r.onNameChange = NameChangePolicy(s)
	default:
		l.problem(n, `use "keep" (the sign-in name never changes) or "rename" (a new name gives a new user principal name)`, "unknown upn.on_name_change %q", s)
	}
}
