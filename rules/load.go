package rules

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	"go.yaml.in/yaml/v3"

	"github.com/personio-entra/personio-entra/rules/internal/hr"
)

// Load reads and checks a rules file. On failure the error is an *Error
// listing every problem as file:line:col: message — fix.
func Load(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: read %s: %w", path, err)
	}
	return LoadBytes(path, data)
}

// LoadBytes checks rules held in memory; name is used in messages.
func LoadBytes(name string, data []byte) (*Rules, error) {
	l := &loader{file: name, r: &Rules{file: name}}
	l.load(data)
	if len(l.problems) > 0 {
		sortProblems(l.problems)
		return nil, &Error{Problems: l.problems}
	}
	return l.r, nil
}

var topKeys = []string{"time_zone", "domain", "upn", "mail_nickname", "attributes", "manager", "groups", "scope", "lifecycle", "matching"}

type loader struct {
	file     string
	r        *Rules
	env      *cel.Env
	problems []Problem
}

func (l *loader) problem(n *yaml.Node, fix, format string, args ...any) {
	l.problemAt(position{n.Line, n.Column}, fix, format, args...)
}

func (l *loader) problemAt(p position, fix, format string, args ...any) {
	l.problems = append(l.problems, Problem{File: l.file, Line: p.line, Column: p.col,
		Message: fmt.Sprintf(format, args...), Fix: fix})
}

var yamlLine = regexp.MustCompile(`line (\d+):`)

func (l *loader) load(data []byte) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line := 1
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		msg := yamlLine.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), "")
		msg = strings.TrimSpace(msg)
		l.problemAt(position{line, 1}, "fix the YAML syntax (quote expressions that contain ': ' or start with a quote)", "%s", msg)
		return
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		l.problemAt(position{1, 1}, "start from deploy/rules.example.yaml", "the rules file is empty")
		return
	}
	root := doc.Content[0]
	fields := l.mapping(root, "the rules file", topKeys)
	if fields == nil {
		return
	}

	// The time zone comes first: the date helpers need it.
	l.r.loc = time.UTC
	if n := l.required(root, fields, "time_zone", `add "time_zone: Europe/Berlin" (an IANA time zone name)`); n != nil {
		if s, ok := l.str(n, "time_zone"); ok {
			loc, err := time.LoadLocation(s)
			if err != nil || s == "" || strings.EqualFold(s, "local") {
				l.problem(n, "use an IANA time zone name such as Europe/Berlin", "unknown time zone %q", s)
			} else {
				l.r.loc = loc
			}
		}
	}
	env, err := newEnv(l.r.loc)
	if err != nil {
		l.problemAt(position{1, 1}, "", "%v", err)
		return
	}
	l.env = env

	if n := l.required(root, fields, "domain", `add "domain: example.com" (a verified domain of the tenant)`); n != nil {
		if s, ok := l.str(n, "domain"); ok {
			if !validDomain(s) {
				l.problem(n, "write a DNS domain of at most 48 characters, e.g. example.com", "domain %q is not valid for user principal names", s)
			}
			l.r.domain = strings.ToLower(s)
		}
	}
	if n := l.required(root, fields, "upn", `add "upn: {candidates: ["{first}.{last}", "{first}.{last}{n}"]}"`); n != nil {
		l.upn(n)
	}
	if n := fields["mail_nickname"]; n != nil {
		l.r.mailNick = l.compile(n, cel.StringType, "mail_nickname")
	}
	if n := fields["attributes"]; n != nil {
		l.attributes(n)
	}
	l.managerRule(fields["manager"])
	if n := fields["groups"]; n != nil {
		l.groupRules(n)
	}
	if n := fields["scope"]; n != nil {
		if sf := l.mapping(n, "scope", []string{"when"}); sf != nil {
			if w := l.required(n, sf, "when", `add "when: <condition>", e.g. employee.legal_entity.name == "Example GmbH"`); w != nil {
				l.r.scope = l.compile(w, cel.BoolType, "scope.when")
			}
		}
	}
	l.lifecyclePolicy(fields["lifecycle"])
	l.matching(fields["matching"])
	l.crossChecks(root)
	l.r.origins = buildOrigins(l.file, root, l.r)
}

// mapping checks that n is a mapping with only allowed, unique keys and
// returns key → value node (nil when n is not a mapping).
func (l *loader) mapping(n *yaml.Node, what string, allowed []string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		l.problem(n, "write key: value pairs here (see rules/README.md)", "%s must be a mapping, not %s", what, kindName(n))
		return nil
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case allowed != nil && !slices.Contains(allowed, k.Value):
			l.problem(k, suggest(k.Value, allowed), "unknown key %q in %s", k.Value, what)
		case out[k.Value] != nil:
			l.problem(k, "remove one of them", "%q appears twice in %s (first on line %d)", k.Value, what, keyLine(n, k.Value))
		default:
			out[k.Value] = v
		}
	}
	return out
}

func keyLine(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return 0
}

func (l *loader) required(parent *yaml.Node, fields map[string]*yaml.Node, key, fix string) *yaml.Node {
	n := fields[key]
	if n == nil {
		l.problem(parent, fix, "missing required key %q", key)
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	if n.Tag == "!!null" {
		return "empty"
	}
	return "a scalar"
}

func (l *loader) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		l.problem(n, "write a single text value", "%s must be text, not %s", what, kindName(n))
		return "", false
	}
	return n.Value, true
}

func (l *loader) boolean(n *yaml.Node, what string) (bool, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		var b bool
		if err := n.Decode(&b); err == nil {
			return b, true
		}
	}
	l.problem(n, "write true or false", "%s must be true or false, not %q", what, n.Value)
	return false, false
}

func (l *loader) integer(n *yaml.Node, what string, lo, hi int) (int, bool) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		var v int
		if err := n.Decode(&v); err == nil && v >= lo && v <= hi {
			return v, true
		}
	}
	l.problem(n, fmt.Sprintf("write a whole number from %d to %d", lo, hi), "%s must be a whole number from %d to %d, not %q", what, lo, hi, n.Value)
	return 0, false
}

// compile type-checks a CEL expression written in n and requires the result
// type want. Errors point into the expression.
func (l *loader) compile(n *yaml.Node, want *cel.Type, what string) *expr {
	src, ok := l.str(n, what)
	if !ok {
		return nil
	}
	pos := position{n.Line, n.Column}
	if strings.TrimSpace(src) == "" {
		l.problemAt(pos, "write an expression, e.g. employee.position", "%s is empty", what)
		return nil
	}
	ast, iss := l.env.Compile(src)
	if iss != nil && iss.Err() != nil {
		for _, e := range iss.Errors() {
			l.problemAt(celPosition(n, e.Location.Line(), e.Location.Column()), celFix(e.Message),
				"%s: %s", what, e.Message)
		}
		return nil
	}
	if !ast.OutputType().IsExactType(want) {
		fix := fmt.Sprintf("make the expression return %s", want)
		if want == cel.StringType {
			fix = `make it return text: string(x) for numbers, list.join(", ") for lists, x.orValue("") for optionals`
		}
		l.problemAt(pos, fix, "%s returns %s, want %s", what, ast.OutputType(), want)
		return nil
	}
	prog, err := l.env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(costLimit))
	if err != nil {
		l.problemAt(pos, "", "%s: %v", what, err)
		return nil
	}
	return &expr{src: src, prog: prog, pos: pos}
}

// celPosition maps a position inside an expression (line 1-based, column
// 0-based) to the file.
func celPosition(n *yaml.Node, line, col int) position {
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The text starts on the line after the | or > indicator.
		return position{n.Line + line, n.Column + col}
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		if line <= 1 {
			return position{n.Line, n.Column + 1 + col}
		}
	default:
		if line <= 1 {
			return position{n.Line, n.Column + col}
		}
	}
	return position{n.Line + line - 1, col + 1}
}

var (
	undefinedField = regexp.MustCompile(`undefined field '([^']*)'`)
	undeclaredRef  = regexp.MustCompile(`undeclared reference to '([^']*)'`)
)

// celFix suggests how to fix a CEL compile error.
func celFix(msg string) string {
	if m := undefinedField.FindStringSubmatch(msg); m != nil {
		return suggest(m[1], employeeFields())
	}
	if m := undeclaredRef.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%q is not defined: use employee.<field>, now, or a helper listed in rules/README.md; text needs quotes", m[1])
	}
	if strings.Contains(msg, "no matching overload") {
		return "check the argument types (helpers and their types are listed in rules/README.md)"
	}
	if strings.Contains(msg, "Syntax error") {
		return "check the CEL syntax: strings in double quotes, && and || for and/or, == for equality"
	}
	return "see the expression reference in rules/README.md"
}

// employeeFields lists the fields of the employee object and its parts.
func employeeFields() []string {
	var out []string
	for _, t := range []reflect.Type{reflect.TypeFor[hr.Employee](), reflect.TypeFor[hr.Ref](), reflect.TypeFor[hr.Attribute](), reflect.TypeFor[hr.CostCenter]()} {
		for f := range t.Fields() {
			if tag := f.Tag.Get("cel"); tag != "" && !slices.Contains(out, tag) {
				out = append(out, tag)
			}
		}
	}
	return out
}

func (l *loader) upn(n *yaml.Node) {
	f := l.mapping(n, "upn", []string{"candidates", "transliteration"})
	if f == nil {
		return
	}
	l.r.translit = German
	if t := f["transliteration"]; t != nil {
		if s, ok := l.str(t, "upn.transliteration"); ok {
			switch Transliteration(s) {
			case ASCII, German:
				l.r.translit = Transliteration(s)
			default:
				l.problem(t, `use "german" (ä→ae, ö→oe, ü→ue, ß→ss) or "ascii" (ä→a)`, "unknown transliteration %q", s)
			}
		}
	}
	c := l.required(n, f, "candidates", `add candidates: ["{first}.{last}", "{first}.{last}{n}"]`)
	if c == nil {
		return
	}
	if c.Kind != yaml.SequenceNode || len(c.Content) == 0 {
		l.problem(c, `list at least one, e.g. ["{first}.{last}", "{f}.{last}", "{first}.{last}{n}"]`, "upn.candidates must be a non-empty list")
		return
	}
	for i, item := range c.Content {
		what := fmt.Sprintf("upn.candidates[%d]", i)
		switch item.Kind {
		case yaml.ScalarNode:
			t, err := parseTemplate(item.Value)
			if err != nil {
				l.problem(item, "placeholders are {first} {last} {preferred} {f} {l} {p} {id} {n}; for anything else write {expr: <CEL>}", "%s: %v", what, err)
				continue
			}
			l.r.candidates = append(l.r.candidates, candidate{tmpl: t})
		case yaml.MappingNode:
			if mf := l.mapping(item, what, []string{"expr"}); mf != nil {
				if e := l.required(item, mf, "expr", "write {expr: <CEL expression returning the local part or the whole UPN>}"); e != nil {
					if x := l.compile(e, cel.StringType, what+".expr"); x != nil {
						l.r.candidates = append(l.r.candidates, candidate{expr: x})
					}
				}
			}
		default:
			l.problem(item, `write a template such as "{first}.{last}" or {expr: <CEL>}`, "%s must be a template or {expr: ...}", what)
		}
	}
}

var policies = []string{string(Always), string(OnCreate), string(Never)}

func (l *loader) attributes(n *yaml.Node) {
	f := l.mapping(n, "attributes", nil)
	if f == nil {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if f[k.Value] != v { // duplicate, already reported
			continue
		}
		prop := k.Value
		if !slices.Contains(Properties, prop) {
			l.problem(k, suggest(prop, Properties), "unknown Entra property %q", prop)
			continue
		}
		rule := attrRule{property: prop, policy: Always}
		var valNode *yaml.Node
		if v.Kind == yaml.MappingNode {
			af := l.mapping(v, "attributes."+prop, []string{"value", "policy"})
			if af == nil {
				continue
			}
			if p := af["policy"]; p != nil {
				if s, ok := l.str(p, "policy"); ok {
					if !slices.Contains(policies, s) {
						l.problem(p, "use always, on_create or never", "unknown policy %q for %s", s, prop)
						continue
					}
					rule.policy = Policy(s)
				}
			}
			valNode = af["value"]
			if valNode == nil && rule.policy != Never {
				l.problem(v, "add value: <expression>", "attributes.%s has no value", prop)
				continue
			}
		} else {
			valNode = v
		}
		if valNode != nil {
			rule.value = l.compile(valNode, cel.StringType, "attributes."+prop)
			if rule.value == nil {
				continue
			}
		}
		l.r.attrs = append(l.r.attrs, rule)
	}
}

func (l *loader) managerRule(n *yaml.Node) {
	l.r.manager.fromSupervisor = true
	if n == nil {
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!bool" {
		b, _ := l.boolean(n, "manager")
		l.r.manager.fromSupervisor = b
		return
	}
	l.r.manager.fromSupervisor = false
	l.r.manager.expr = l.compile(n, cel.StringType, "manager")
}

func (l *loader) groupRules(n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		l.problem(n, `write a list: - group: "Finance"\n    when: employee.department.name == "Finance"`, "groups must be a list, not %s", kindName(n))
		return
	}
	seen := map[string]position{}
	for i, item := range n.Content {
		what := fmt.Sprintf("groups[%d]", i)
		f := l.mapping(item, what, []string{"group", "when"})
		if f == nil {
			continue
		}
		g := l.required(item, f, "group", "add group: <display name or object id>")
		w := l.required(item, f, "when", `add when: <condition>; use when: "true" for everyone in scope`)
		if g == nil || w == nil {
			continue
		}
		key, ok := l.str(g, what+".group")
		if !ok {
			continue
		}
		key = strings.TrimSpace(key)
		if key == "" {
			l.problem(g, "write the group's display name or object id", "%s.group is empty", what)
			continue
		}
		norm := strings.ToLower(key)
		if first, dup := seen[norm]; dup {
			l.problem(g, "merge the conditions into one entry with ||", "duplicate group %q (first on line %d)", key, first.line)
			continue
		}
		seen[norm] = position{g.Line, g.Column}
		if x := l.compile(w, cel.BoolType, what+".when"); x != nil {
			l.r.groups = append(l.r.groups, groupRule{key: key, when: x, pos: position{g.Line, g.Column}})
		}
	}
}

func (l *loader) lifecyclePolicy(n *yaml.Node) {
	lc := Lifecycle{
		CreateDaysBeforeStart: 7,
		EnableOnStartDate:     true,
		Leaver:                LeaverPolicy{Disable: true, RevokeSessions: true, RemoveMemberships: true},
		RehireWithinDays:      180,
	}
	defer func() { l.r.lifecycle = lc }()
	if n == nil {
		return
	}
	f := l.mapping(n, "lifecycle", []string{"create_days_before_start", "enable_on_start_date", "leaver", "leave_of_absence", "delete_after_days", "rehire_within_days"})
	if f == nil {
		return
	}
	if v := f["create_days_before_start"]; v != nil {
		lc.CreateDaysBeforeStart, _ = l.integer(v, "create_days_before_start", 0, 365)
	}
	if v := f["enable_on_start_date"]; v != nil {
		lc.EnableOnStartDate, _ = l.boolean(v, "enable_on_start_date")
	}
	if v := f["delete_after_days"]; v != nil {
		lc.DeleteAfterDays, _ = l.integer(v, "delete_after_days", 0, 3650)
	}
	if v := f["rehire_within_days"]; v != nil {
		lc.RehireWithinDays, _ = l.integer(v, "rehire_within_days", 0, 3650)
	}
	if v := f["leaver"]; v != nil {
		if lf := l.mapping(v, "lifecycle.leaver", []string{"disable", "revoke_sessions", "remove_memberships"}); lf != nil {
			if b := lf["disable"]; b != nil {
				lc.Leaver.Disable, _ = l.boolean(b, "leaver.disable")
			}
			if b := lf["revoke_sessions"]; b != nil {
				lc.Leaver.RevokeSessions, _ = l.boolean(b, "leaver.revoke_sessions")
			}
			if b := lf["remove_memberships"]; b != nil {
				lc.Leaver.RemoveMemberships, _ = l.boolean(b, "leaver.remove_memberships")
			}
		}
	}
	if v := f["leave_of_absence"]; v != nil {
		if af := l.mapping(v, "lifecycle.leave_of_absence", []string{"disable"}); af != nil {
			if b := af["disable"]; b != nil {
				lc.LeaveOfAbsence.Disable, _ = l.boolean(b, "leave_of_absence.disable")
			}
		}
	}
}

// matchFields are the Personio fields a key may compare, and each Entra
// property's default.
var (
	matchProperties = []string{"employeeId", "userPrincipalName", "mail"}
	matchFields     = []string{"person_id", "email"}
	matchDefaults   = map[string]string{"employeeId": "person_id", "userPrincipalName": "email", "mail": "email"}
)

func (l *loader) matching(n *yaml.Node) {
	if n == nil {
		l.r.match = []MatchKey{{Property: "employeeId", Field: "person_id"}}
		return
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.problem(n, "write a list, e.g. [employeeId, userPrincipalName=email]", "matching must be a non-empty list")
		return
	}
	seen := map[string]bool{}
	for _, item := range n.Content {
		s, ok := l.str(item, "matching entry")
		if !ok {
			continue
		}
		prop, field, hasField := strings.Cut(strings.TrimSpace(s), "=")
		prop, field = strings.TrimSpace(prop), strings.TrimSpace(field)
		if !slices.Contains(matchProperties, prop) {
			l.problem(item, suggest(prop, matchProperties), "unknown matching property %q", prop)
			continue
		}
		if !hasField {
			field = matchDefaults[prop]
		}
		if !slices.Contains(matchFields, field) {
			l.problem(item, suggest(field, matchFields), "unknown Personio field %q in matching", field)
			continue
		}
		k := MatchKey{Property: prop, Field: field}
		if seen[k.String()] {
			l.problem(item, "remove the repeated key", "matching key %q appears twice", k)
			continue
		}
		seen[k.String()] = true
		l.r.match = append(l.r.match, k)
	}
}

// crossChecks finds problems between sections.
func (l *loader) crossChecks(root *yaml.Node) {
	mapped := map[string]bool{}
	for _, a := range l.r.attrs {
		mapped[a.property] = a.policy != Never
	}
	attrsPos := position{root.Line, root.Column}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "attributes" {
			attrsPos = position{root.Content[i].Line, root.Content[i].Column}
		}
	}
	if !mapped["displayName"] && !l.hasProblemIn("attributes.displayName") {
		l.problemAt(attrsPos, `add displayName: 'default(employee.preferred_name, employee.first_name) + " " + employee.last_name'`,
			"attributes must set displayName: Graph requires it to create a user")
	}
	for _, k := range l.r.match {
		if k.Property == "employeeId" && !mapped["employeeId"] && !l.hasProblemIn("attributes.employeeId") {
			l.problemAt(attrsPos, "add employeeId: employee.person_id",
				"matching uses employeeId but attributes does not set it, so new accounts could never be matched again")
		}
	}
}

func (l *loader) hasProblemIn(what string) bool {
	for _, p := range l.problems {
		if strings.HasPrefix(p.Message, what) {
			return true
		}
	}
	return false
}
