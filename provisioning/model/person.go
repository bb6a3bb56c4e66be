package model

import "regexp"

var personIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidPersonID reports whether id can be a Personio person id: 1 to 64
// letters, digits, '-' or '_'. Anything else is refused before it reaches a
// query, a subject or a filter.
func ValidPersonID(id string) bool { return personIDRE.MatchString(id) }

// UserProperties lists every Entra user property the rules may map, by its
// Graph name (https://learn.microsoft.com/en-us/graph/api/resources/user).
// Nested properties use a slash. Anything else in a rules file is an error.
var UserProperties = []string{
	"displayName", "givenName", "surname", "jobTitle", "department",
	"companyName", "officeLocation", "employeeId", "employeeType",
	"employeeHireDate", "employeeOrgData/division", "employeeOrgData/costCenter",
	"usageLocation", "preferredLanguage", "businessPhones", "mobilePhone",
	"streetAddress", "city", "postalCode", "state", "country",
}
