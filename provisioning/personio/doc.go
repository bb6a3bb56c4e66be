// Package personio is the Personio adapter: it reads employees (normalised
// to model.Employee), resolves employments to persons, writes the work email
// back and manages the webhook subscription.
//
// # Which API call fills which model.Employee field
//
// Reads use Personio API v1, writes and webhook management v2
// (docs/personio-api.md#reading-people,
// docs/personio-api.md#writing-the-email-back). v1 GET /company/employees
// returns the person and the current employment as one flat record with the
// names of department, team, office and legal entity inline, 100 a page, so a
// complete read of n people costs ceil(n/100) requests and no name lookups;
// v2 would need a request per person for employments plus org-unit and
// legal-entity lookups, and offers no office names.
//
//	Employee field   v1 attribute (GET /company/employees[/{id}])
//	PersonID         id
//	FirstName …      first_name, last_name, preferred_name, email
//	Gender, Status   gender, status (upper-cased: FEMALE, ACTIVE, …)
//	Position         position
//	Department/Team  department / team {id, name}
//	Office           office {id, name}
//	LegalEntity      subcompany {id, name} (v2 calls it legal_entity)
//	CostCenters      cost_centers [{id, name, percentage}]
//	SupervisorID     supervisor.id (the manager's person id)
//	EmploymentType   employment_type (INTERNAL, EXTERNAL)
//	StartDate        hire_date
//	TerminationDate  termination_date
//	LastWorkingDay   last_working_day
//	TerminationType  termination_type (upper-cased, spaces → _)
//	Attributes       every dynamic_* attribute {label, type, value}
//	UpdatedAt        last_modified_at
//	EmploymentID     not filled: v1 has no employment ids
//
// Attributes that are not whitelisted on the API credential are silently
// absent from v1 answers and stay empty here.
//
// v2 is used for: webhooks (GET/POST/PATCH /v2/webhooks, ping),
// PersonIDForEmployment (GET /v2/persons lists employment ids per person)
// and UpdatePersonEmail (PATCH /v2/persons/{id}; v1 cannot change email).
// Each API version gets its own token from its own token endpoint
// (POST /v1/auth, POST /v2/auth/token), cached until shortly before expiry.
package personio
