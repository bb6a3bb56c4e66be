package rules

import (
	"github.com/personio-entra/personio-entra/provisioning/model"
	"slices"
	"strings"
	"testing"
	"time"
)

const mappingRules = `
time_zone: Europe/Berlin
domain: example.com
upn:
  candidates: ["{preferred}.{last}", "{f}.{last}", "{first}.{last}{n}"]
  transliteration: german
attributes:
  displayName: 'default(employee.preferred_name, employee.first_name) + " " + employee.last_name'
  givenName: employee.first_name
  surname: employee.last_name
  employeeId: employee.person_id
  jobTitle: employee.position
  department: employee.department.name
  businessPhones: 'attr(employee, "Work phone")'
  mobilePhone: 'attr(employee, "dynamic_9002")'
  preferredLanguage: { value: 'attr(employee, "Preferred language")', policy: on_create }
  employeeHireDate: employee.start_date
  usageLocation: '{"Munich": "de", "London": "GB"}[?employee.office.name].orValue("")'
  city: '{"Munich": "München", "London": "London"}[?employee.office.name].orValue("")'
  companyName: { policy: never }
groups:
  - group: Finance
    when: employee.department.name == "Finance"
  - group: 00000000-0000-0000-0000-00000000beef
    when: employee.gender == "FEMALE"
`

func TestMapping(t *testing.T) {
	r, err := LoadBytes("mapping.yaml", []byte(mappingRules))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	phones := func(work, mobile, lang string) map[string]model.Attribute {
		return map[string]model.Attribute{
			"dynamic_9001": {ID: "dynamic_9001", Label: "Work phone", Value: work},
			"dynamic_9002": {ID: "dynamic_9002", Label: "Mobile phone", Value: mobile},
			"dynamic_9003": {ID: "dynamic_9003", Label: "Preferred language", Value: lang},
		}
	}
	base := func(first, last string) model.Employee {
		return model.Employee{PersonID: "1026", FirstName: first, LastName: last, Status: "ACTIVE",
			Position: "Senior Software Engineer", Department: model.Ref{ID: "d3", Name: "Engineering"},
			Office: model.Ref{Name: "Munich"}, StartDate: model.Date{Year: 2020, Month: 7, Day: 19},
			Attributes: phones("+49 89 1234567", "+49 151 2345678", "de-DE")}
	}
	tests := []struct {
		name      string
		edit      func(e *model.Employee)
		attrs     map[string]string // expected values ("-" = absent)
		upns      []string          // expected leading candidates
		nick      string
		groups    []string
		warnMatch string
	}{
		{
			name:  "german umlauts and sharp s",
			edit:  func(e *model.Employee) { *e = base("Jürgen", "Weiß") },
			attrs: map[string]string{"displayName": "Jürgen Weiß", "surname": "Weiß", "businessPhones": "+49 89 1234567", "mobilePhone": "+49 151 2345678", "preferredLanguage": "de-DE", "usageLocation": "DE", "city": "München", "employeeHireDate": "2020-07-18T22:00:00Z", "companyName": ""},
			upns:  []string{"juergen.weiss@example.com", "j.weiss@example.com", "juergen.weiss2@example.com"},
			nick:  "juergenweiss",
		},
		{
			name: "apostrophe and space in the surname",
			edit: func(e *model.Employee) { *e = base("Björn", "O'Connor") },
			upns: []string{"bjoern.oconnor@example.com", "b.oconnor@example.com"},
			nick: "bjoernoconnor",
		},
		{
			name: "double-barrelled with particles",
			edit: func(e *model.Employee) {
				*e = base("Máire-Siobhán", "Ní Bhriain-Fitzgerald-Hohenzollern")
				e.Gender = "FEMALE"
			},
			attrs:  map[string]string{"displayName": "Máire-Siobhán Ní Bhriain-Fitzgerald-Hohenzollern"},
			upns:   []string{"maire-siobhan.nibhriain-fitzgerald-hohenzollern@example.com", "m.nibhriain-fitzgerald-hohenzollern@example.com"},
			nick:   "maire-siobhannibhriain-fitzgerald-hohenzollern",
			groups: []string{"00000000-0000-0000-0000-00000000beef"},
		},
		{
			name: "very long name keeps the counter",
			edit: func(e *model.Employee) {
				*e = base("Hubert Blaine", "Wolfeschlegelsteinhausenbergerdorff-Welchevoralternwarengewissenhaft")
			},
			upns: []string{
				"hubertblaine.wolfeschlegelsteinhausenbergerdorff-welchevoraltern@example.com",
				"h.wolfeschlegelsteinhausenbergerdorff-welchevoralternwarengewiss@example.com",
				"hubertblaine.wolfeschlegelsteinhausenbergerdorff-welchevoralter2@example.com",
			},
			warnMatch: "surname: cut to Graph's 64 characters",
		},
		{
			name: "Polish, Nordic and Turkish letters",
			edit: func(e *model.Employee) { *e = base("Małgorzata", "Østergaard-Yılmaz") },
			upns: []string{"malgorzata.ostergaard-yilmaz@example.com"},
		},
		{
			name:  "preferred name wins in display name and first candidate",
			edit:  func(e *model.Employee) { *e = base("Katharina", "Vogel"); e.PreferredName = "Kathi" },
			attrs: map[string]string{"displayName": "Kathi Vogel", "givenName": "Katharina"},
			upns:  []string{"kathi.vogel@example.com", "k.vogel@example.com", "katharina.vogel2@example.com"},
		},
		{
			name: "missing optional fields: empty values clear, usageLocation is left alone",
			edit: func(e *model.Employee) {
				*e = base("Ole", "Smith")
				e.Office, e.Position, e.Attributes, e.StartDate = model.Ref{}, "", nil, model.Date{}
				e.Department = model.Ref{ID: "d1", Name: "Finance"}
			},
			attrs:  map[string]string{"jobTitle": "", "businessPhones": "", "mobilePhone": "", "city": "", "preferredLanguage": "", "usageLocation": "-", "employeeHireDate": ""},
			upns:   []string{"ole.smith@example.com", "o.smith@example.com"},
			groups: []string{"Finance"},
		},
		{
			name: "values are trimmed and cut to Graph's limits",
			edit: func(e *model.Employee) {
				*e = base("Ana", "Ruiz")
				e.Position = "  " + strings.Repeat("Ü", 130) + "  "
			},
			attrs:     map[string]string{"jobTitle": strings.Repeat("Ü", 128)},
			warnMatch: "jobTitle: cut to Graph's 128 characters",
		},
		{
			name: "an over-long employee id is not truncated",
			edit: func(e *model.Employee) {
				*e = base("Ana", "Ruiz")
				e.PersonID = "12345678901234567"
			},
			attrs:     map[string]string{"employeeId": "-"},
			warnMatch: "longer than Graph's 16 characters",
		},
		{
			name: "invalid custom attribute values are dropped with a warning",
			edit: func(e *model.Employee) {
				*e = base("Ana", "Ruiz")
				e.Attributes = phones("+34 600 000 000", "", "Spanish please")
				e.Office = model.Ref{Name: "London"}
			},
			attrs:     map[string]string{"preferredLanguage": "-", "usageLocation": "GB", "businessPhones": "+34 600 000 000"},
			warnMatch: "is not a language tag",
		},
		{
			name:      "a name with no Latin letters yields no candidates, with a warning",
			edit:      func(e *model.Employee) { *e = base("王", "伟") },
			attrs:     map[string]string{"displayName": "王 伟"},
			upns:      []string{},
			warnMatch: "no valid user principal name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e model.Employee
			tt.edit(&e)
			d, err := r.Evaluate(e, now)
			if err != nil {
				t.Fatal(err)
			}
			for prop, want := range tt.attrs {
				got, ok := d.Attributes[prop]
				if want == "-" {
					if ok {
						t.Errorf("%s = %q, want it left out", prop, got.Value)
					}
					continue
				}
				if !ok || got.Value != want {
					t.Errorf("%s = %q (present %v), want %q", prop, got.Value, ok, want)
				}
			}
			if tt.upns != nil {
				if len(tt.upns) == 0 && len(d.UPNCandidates) != 0 {
					t.Errorf("candidates %q, want none", d.UPNCandidates)
				}
				if len(d.UPNCandidates) < len(tt.upns) || !slices.Equal(d.UPNCandidates[:len(tt.upns)], tt.upns) {
					t.Errorf("candidates %q, want them to start with %q", d.UPNCandidates, tt.upns)
				}
			}
			for _, u := range d.UPNCandidates {
				if !independentValidUPN(u) {
					t.Errorf("invalid candidate %q", u)
				}
			}
			if tt.nick != "" && d.MailNickname != tt.nick {
				t.Errorf("mail nickname %q, want %q", d.MailNickname, tt.nick)
			}
			if tt.groups != nil && !slices.Equal(d.Groups, tt.groups) {
				t.Errorf("groups %q, want %q", d.Groups, tt.groups)
			}
			joined := strings.Join(d.Warnings, "\n")
			if tt.warnMatch == "" && joined != "" {
				t.Errorf("unexpected warnings: %s", joined)
			}
			if !strings.Contains(joined, tt.warnMatch) {
				t.Errorf("warnings %q, want one containing %q", d.Warnings, tt.warnMatch)
			}
		})
	}
}

// TestCandidatesDedupAndOrder: templates that render the same name collapse
// to one candidate, in first-seen order.
func TestCandidatesDedupAndOrder(t *testing.T) {
	r, err := LoadBytes("dedup.yaml", []byte(`
time_zone: UTC
domain: Example.COM
upn:
  candidates: ["{first}.{last}", "{preferred}.{last}", {expr: 'employee.first_name + "." + employee.last_name'}, {expr: '"Anna.Lee@other.example.org"'}, "{first}{n}"]
attributes:
  displayName: employee.first_name
  employeeId: employee.person_id
`))
	if err != nil {
		t.Fatal(err)
	}
	d, err := r.Evaluate(model.Employee{PersonID: "7", FirstName: "Anna", LastName: "Lee", Status: "ACTIVE"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"anna.lee@example.com", "Anna.Lee@other.example.org", "anna2@example.com"}
	if len(d.UPNCandidates) != 10 || !slices.Equal(d.UPNCandidates[:3], want) {
		t.Errorf("candidates %q, want %d starting with %q", d.UPNCandidates, 10, want)
	}
}
