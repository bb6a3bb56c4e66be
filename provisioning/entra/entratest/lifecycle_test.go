package entratest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// doBeta calls the beta endpoint.
func doBeta(t *testing.T, s *Server, tok, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+"/beta"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("body is not JSON: %s", raw)
		}
	}
	return resp.StatusCode, out
}

func tokenFor(t *testing.T, s *Server) string {
	t.Helper()
	st, body := token(t, s, s.ClientSecret())
	if st != 200 {
		t.Fatalf("token: %d %v", st, body)
	}
	return body["access_token"].(string)
}

// Tokens are JWTs whose roles claim lists the granted permissions; the
// routes of deleted items and licences answer 403 without one of theirs.
func TestPermissionsInTokens(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	if got := tokenRoles(tokenFor(t, s)); !slices.Equal(got, DefaultPermissions) {
		t.Errorf("default roles %v", got)
	}
	s.SetPermissions([]string{"User.ReadWrite.All"})
	tok := tokenFor(t, s)
	if got := tokenRoles(tok); !slices.Equal(got, []string{"User.ReadWrite.All"}) {
		t.Errorf("roles %v", got)
	}
	for _, c := range []struct {
		path   string
		status int
	}{
		{"/subscribedSkus", 403},
		{"/directory/deletedItems/microsoft.graph.user", 200}, // User.ReadWrite.All reads users
		{"/users", 200},
	} {
		st, _, body := do(t, s, tok, call{method: "GET", path: c.path})
		if st != c.status {
			t.Errorf("GET %s: %d, want %d (%v)", c.path, st, c.status, body)
		}
		if c.status == 403 {
			if code, msg := errCode(body); code != "Authorization_RequestDenied" || msg != msgInsufficient {
				t.Errorf("403 body %v", body)
			}
		}
	}
}

func TestDeletedItems(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	tok := tokenFor(t, s)
	at := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	gone := s.AddDeletedUser(User{UserPrincipalName: "ada@example.com", Mail: "ada@example.com", DisplayName: "Ada", EmployeeID: "7"}, at)
	s.AddUser(User{UserPrincipalName: "bob@example.com", DisplayName: "Bob", EmployeeID: "8", AccountEnabled: true})

	filter := "/directory/deletedItems/microsoft.graph.user?$count=true&$select=id,userPrincipalName,employeeId,deletedDateTime&$filter=" + url.QueryEscape("employeeId eq '7'")
	st, _, body := do(t, s, tok, call{method: "GET", path: filter, headers: map[string]string{"ConsistencyLevel": "eventual"}})
	v, _ := body["value"].([]any)
	if st != 200 || len(v) != 1 || body["@odata.count"].(float64) != 1 {
		t.Fatalf("deleted users: %d %v", st, body)
	}
	if u := v[0].(map[string]any); u["id"] != gone || u["deletedDateTime"] != "2026-11-20T08:00:00Z" {
		t.Errorf("deleted user %v", u)
	}
	if st, _, _ := do(t, s, tok, call{method: "GET", path: "/users?$filter=" + url.QueryEscape("employeeId eq '7'")}); st != 200 {
		t.Error("users read failed")
	}
	if st, _, body := do(t, s, tok, call{method: "GET", path: "/users/" + gone}); st != 404 {
		t.Errorf("a deleted user is readable: %d %v", st, body)
	}
	s.RefuseDeletedItemsFilter(true)
	if st, _, body := do(t, s, tok, call{method: "GET", path: filter, headers: map[string]string{"ConsistencyLevel": "eventual"}}); st != 400 {
		t.Errorf("refused filter: %d %v", st, body)
	} else if code, _ := errCode(body); code != "Request_UnsupportedQuery" {
		t.Errorf("code %q", code)
	}
	if st, _, body := do(t, s, tok, call{method: "GET", path: "/directory/deletedItems/microsoft.graph.user?$select=id,employeeId"}); st != 200 || len(body["value"].([]any)) != 1 {
		t.Errorf("listing without a filter: %d %v", st, body)
	}

	// Someone took the name and the address meanwhile.
	s.AddUser(User{UserPrincipalName: "ada@example.com", Mail: "ada@example.com", DisplayName: "Other Ada", AccountEnabled: true})
	restore := "/directory/deletedItems/" + gone + "/restore"
	cases := []struct {
		name   string
		beta   bool
		body   string
		status int
		target string
	}{
		{"v1.0 takes no parameters", false, `{"newUserPrincipalName":"ada2@example.com"}`, 400, ""},
		{"v1.0, name taken", false, "", 400, "userPrincipalName"},
		{"beta, new name, address taken", true, `{"newUserPrincipalName":"ada2@example.com"}`, 400, "proxyAddresses"},
		{"beta, invalid name", true, `{"newUserPrincipalName":"ada 2@example.com"}`, 400, "userPrincipalName"},
		{"beta, new name, address dropped", true, `{"newUserPrincipalName":"ada2@example.com","autoReconcileProxyConflict":true}`, 200, ""},
		{"already restored", true, `{}`, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var st int
			var body map[string]any
			if c.beta {
				st, body = doBeta(t, s, tok, "POST", restore, c.body)
			} else {
				st, _, body = do(t, s, tok, call{method: "POST", path: restore, body: c.body})
			}
			if st != c.status {
				t.Fatalf("status %d, want %d: %v", st, c.status, body)
			}
			if c.target != "" {
				e, _ := body["error"].(map[string]any)
				d, _ := e["details"].([]any)
				if len(d) == 0 || d[0].(map[string]any)["target"] != c.target {
					t.Errorf("error %v, want target %s", body, c.target)
				}
			}
		})
	}
	u, _ := s.User(gone)
	if u.Deleted || u.UserPrincipalName != "ada2@example.com" || u.Mail != "" || u.EmployeeID != "7" {
		t.Errorf("restored user %+v", u)
	}
	if st, body := doBeta(t, s, tok, "GET", "/users", ""); st != 400 {
		t.Errorf("beta serves only the restore: %d %v", st, body)
	}
}

func TestLicenses(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	tok := tokenFor(t, s)
	e3 := s.AddSKU(SKU{PartNumber: "SPE_E3", Enabled: 1, Plans: []ServicePlan{{Name: "YAMMER_ENTERPRISE"}, {Name: "EXCHANGE_S_ENTERPRISE"}}})
	ada := s.AddUser(User{UserPrincipalName: "ada@example.com", DisplayName: "Ada", AccountEnabled: true, Properties: map[string]any{"usageLocation": "DE"}})
	bob := s.AddUser(User{UserPrincipalName: "bob@example.com", DisplayName: "Bob", AccountEnabled: true, Properties: map[string]any{"usageLocation": "DE"}})
	nowhere := s.AddUser(User{UserPrincipalName: "cy@example.com", DisplayName: "Cy", AccountEnabled: true})

	st, _, body := do(t, s, tok, call{method: "GET", path: "/subscribedSkus"})
	v, _ := body["value"].([]any)
	if st != 200 || len(v) != 1 {
		t.Fatalf("subscribedSkus %d %v", st, body)
	}
	sku := v[0].(map[string]any)
	plans := sku["servicePlans"].([]any)
	yammer := plans[0].(map[string]any)["servicePlanId"].(string)
	if sku["skuPartNumber"] != "SPE_E3" || sku["consumedUnits"].(float64) != 0 || sku["prepaidUnits"].(map[string]any)["enabled"].(float64) != 1 {
		t.Errorf("sku %v", sku)
	}
	assign := func(add, remove string) string { return `{"addLicenses":` + add + `,"removeLicenses":` + remove + `}` }
	cases := []struct {
		name, user, body string
		status           int
		msg              string
	}{
		{"parameters are required", ada, `{"addLicenses":[]}`, 400, "The missing parameters are: removeLicenses."},
		{"unknown sku", ada, assign(`[{"skuId":"00000000-0000-0000-0000-000000000bad","disabledPlans":[]}]`, `[]`), 400, "does not correspond to a valid company License"},
		{"no usage location", nowhere, assign(`[{"skuId":"`+e3+`","disabledPlans":[]}]`, `[]`), 400, msgNoUsageLocation},
		{"assigned with a plan disabled", ada, assign(`[{"skuId":"`+e3+`","disabledPlans":["`+yammer+`"]}]`, `[]`), 200, ""},
		{"no seat left", bob, assign(`[{"skuId":"`+e3+`","disabledPlans":[]}]`, `[]`), 400, "does not have any available licenses"},
		{"plans changed without a seat", ada, assign(`[{"skuId":"`+e3+`","disabledPlans":[]}]`, `[]`), 200, ""},
		{"remove what the user lacks", bob, assign(`[]`, `["`+e3+`"]`), 400, msgNotHeld},
		{"removed", ada, assign(`[]`, `["`+e3+`"]`), 200, ""},
		{"a seat is free again", bob, assign(`[{"skuId":"`+e3+`","disabledPlans":[]}]`, `[]`), 200, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, _, body := do(t, s, tok, call{method: "POST", path: "/users/" + c.user + "/assignLicense", body: c.body})
			if st != c.status {
				t.Fatalf("status %d, want %d: %v", st, c.status, body)
			}
			if code, msg := errCode(body); c.msg != "" && (code != "Request_BadRequest" || !strings.Contains(msg, c.msg)) {
				t.Errorf("error %q %q, want Request_BadRequest %q", code, msg, c.msg)
			}
		})
	}
	if got := s.UserLicenses(bob); !slices.Equal(got, []string{e3}) || len(s.UserLicenses(ada)) != 0 {
		t.Errorf("licences: bob %v ada %v", got, s.UserLicenses(ada))
	}
	st, _, body = do(t, s, tok, call{method: "GET", path: "/users/" + bob + "?$select=id,assignedLicenses"})
	if ls, _ := body["assignedLicenses"].([]any); st != 200 || len(ls) != 1 || ls[0].(map[string]any)["skuId"] != e3 {
		t.Errorf("assignedLicenses %v", body)
	}
	// Deleting the user releases the seat.
	if st, _, _ := do(t, s, tok, call{method: "DELETE", path: "/users/" + bob}); st != 204 {
		t.Fatal("delete")
	}
	_, _, body = do(t, s, tok, call{method: "GET", path: "/subscribedSkus"})
	if n := body["value"].([]any)[0].(map[string]any)["consumedUnits"].(float64); n != 0 {
		t.Errorf("consumed %v after the holder was deleted", n)
	}
	if c := s.Requests(); c.ByRoute["POST /users/{id}/assignLicense"] != len(cases) || c.ByRoute["GET /subscribedSkus"] != 2 {
		t.Errorf("routes %v", c.ByRoute)
	}
}
