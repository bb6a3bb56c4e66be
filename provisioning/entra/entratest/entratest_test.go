package entratest

import (
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// token gets an access token with the client secret flow.
func token(t *testing.T, s *Server, secret string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID()}, "client_secret": {secret},
		"scope": {"https://graph.microsoft.com/.default"}}
	resp, err := s.Client().PostForm(s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

type call struct {
	method, path, body string
	gzip               bool
	headers            map[string]string
}

func do(t *testing.T, s *Server, tok string, c call) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	if c.body != "" {
		if c.gzip {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write([]byte(c.body))
			zw.Close()
			rd = &buf
		} else {
			rd = strings.NewReader(c.body)
		}
	}
	req, err := http.NewRequest(c.method, s.GraphURL()+c.path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %s", c.method, c.path, raw)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func errCode(body map[string]any) (string, string) {
	e, _ := body["error"].(map[string]any)
	code, _ := e["code"].(string)
	msg, _ := e["message"].(string)
	return code, msg
}

func TestTokenEndpoint(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	cases := []struct {
		name, secret string
		status       int
		aadsts       string
	}{
		{"right secret", s.ClientSecret(), 200, ""},
		{"wrong secret", "nope", 401, "AADSTS7000215"},
	}
	for _, tc := range cases {
		st, body := token(t, s, tc.secret)
		if st != tc.status {
			t.Fatalf("%s: status %d (%v)", tc.name, st, body)
		}
		desc, _ := body["error_description"].(string)
		if tc.aadsts != "" && !strings.HasPrefix(desc, tc.aadsts) {
			t.Fatalf("%s: error_description %q", tc.name, desc)
		}
		if tc.aadsts == "" && body["access_token"] == "" {
			t.Fatalf("%s: no access token", tc.name)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.CertificatePEM()) {
		t.Fatal("CertificatePEM is not a PEM certificate")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(s.URL() + "/" + s.TenantID() + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var disc map[string]string
	json.NewDecoder(resp.Body).Decode(&disc)
	if disc["token_endpoint"] != s.URL()+"/"+s.TenantID()+"/oauth2/v2.0/token" || disc["issuer"] == "" {
		t.Fatalf("discovery: %v", disc)
	}
}

func TestGraphBehaviour(t *testing.T) {
	s := New(Options{WriteBudget: 4, WriteWindow: time.Hour})
	defer s.Close()
	_, tb := token(t, s, s.ClientSecret())
	tok := tb["access_token"].(string)
	for i := range 5 {
		s.AddUser(User{UserPrincipalName: "u" + string(rune('a'+i)) + "@example.com", DisplayName: "U", EmployeeID: "e" + string(rune('a'+i))})
	}
	s.AddUser(User{UserPrincipalName: "o'neil@example.com", DisplayName: "O'Neil", EmployeeID: "q"})
	dl := s.AddGroup(Group{DisplayName: "DL", MailEnabled: true})
	create := `{"accountEnabled":true,"displayName":"N","mailNickname":"n","userPrincipalName":"n@example.com","passwordProfile":{"password":"Abcdefgh1!xyz","forceChangePasswordNextSignIn":true}}`

	cases := []struct {
		name   string
		tok    string
		c      call
		status int
		code   string
		check  func(t *testing.T, h http.Header, body map[string]any)
	}{
		{"no token", "", call{method: "GET", path: "/users"}, 401, "InvalidAuthenticationToken", nil},
		{"bad token", "forged", call{method: "GET", path: "/users"}, 401, "InvalidAuthenticationToken", nil},
		{"page with absolute nextLink", tok, call{method: "GET", path: "/users?$top=2&$select=id,employeeId"}, 200, "", func(t *testing.T, _ http.Header, b map[string]any) {
			next, _ := b["@odata.nextLink"].(string)
			if !strings.HasPrefix(next, s.GraphURL()+"/users?") || len(b["value"].([]any)) != 2 {
				t.Fatalf("page: %v", b)
			}
		}},
		{"top too large", tok, call{method: "GET", path: "/users?$top=1000"}, 400, "Request_BadRequest", nil},
		{"filter with escaped quote", tok, call{method: "GET", path: "/users?$filter=" + url.QueryEscape("userPrincipalName eq 'O''Neil@example.com'")}, 200, "", func(t *testing.T, _ http.Header, b map[string]any) {
			if v := b["value"].([]any); len(v) != 1 {
				t.Fatalf("filter matched %d", len(v))
			}
		}},
		{"ne needs advanced query", tok, call{method: "GET", path: "/users?$filter=" + url.QueryEscape("employeeId ne null")}, 400, "Request_UnsupportedQuery", nil},
		{"advanced query with count", tok, call{method: "GET", path: "/users?$count=true&$filter=" + url.QueryEscape("employeeId ne null"), headers: map[string]string{"ConsistencyLevel": "eventual"}}, 200, "", func(t *testing.T, _ http.Header, b map[string]any) {
			if b["@odata.count"].(float64) != 6 {
				t.Fatalf("count %v", b["@odata.count"])
			}
		}},
		{"gzip create", tok, call{method: "POST", path: "/users", body: create, gzip: true}, 201, "", nil},
		{"duplicate UPN", tok, call{method: "POST", path: "/users", body: create}, 400, "Request_BadRequest", func(t *testing.T, _ http.Header, b map[string]any) {
			d := b["error"].(map[string]any)["details"].([]any)[0].(map[string]any)
			inner := b["error"].(map[string]any)["innerError"].(map[string]any)
			if d["code"] != "ObjectConflict" || d["target"] != "userPrincipalName" || inner["request-id"] == "" {
				t.Fatalf("error: %v", b)
			}
		}},
		{"weak password", tok, call{method: "POST", path: "/users", body: strings.Replace(create, "Abcdefgh1!xyz", "abcdefgh", 1)}, 400, "Request_BadRequest", nil},
		{"distribution list refused", tok, call{method: "PATCH", path: "/groups/" + dl, body: `{"members@odata.bind":["https://graph.microsoft.com/v1.0/directoryObjects/x"]}`}, 400, "Request_BadRequest", func(t *testing.T, _ http.Header, b map[string]any) {
			if _, msg := errCode(b); msg != msgMailEnabled {
				t.Fatalf("message %q", msg)
			}
		}},
		{"write budget", tok, call{method: "DELETE", path: "/users/ua@example.com"}, 429, "TooManyRequests", func(t *testing.T, h http.Header, _ map[string]any) {
			if h.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, h, body := do(t, s, tc.tok, tc.c)
			if st != tc.status {
				t.Fatalf("status %d, want %d: %v", st, tc.status, body)
			}
			if code, msg := errCode(body); code != tc.code || (tc.code != "" && msg == "") {
				t.Fatalf("error code %q message %q, want code %q", code, msg, tc.code)
			}
			if tc.check != nil {
				tc.check(t, h, body)
			}
		})
	}
	if c := s.Requests(); c.Throttled != 1 || c.Total != len(cases) {
		t.Fatalf("counters %+v", c)
	}
	var dump bytes.Buffer
	if err := s.Dump(&dump); err != nil || !strings.Contains(dump.String(), `"n@example.com"`) || strings.Contains(dump.String(), "Abcdefgh1!xyz") {
		t.Fatalf("dump (must hold the user, never the password): %v %s", err, dump.String())
	}
}

func TestParseFilter(t *testing.T) {
	cases := []struct {
		in      string
		want    []clause
		wantErr bool
	}{
		{"employeeId eq '42'", []clause{{"employeeId", "eq", "42"}}, false},
		{"mail eq 'a''b@x' and accountEnabled eq true", []clause{{"mail", "eq", "a'b@x"}, {"accountEnabled", "eq", true}}, false},
		{"startswith(displayName,'Ann')", []clause{{"displayName", "startswith", "Ann"}}, false},
		{"employeeId ne null", []clause{{"employeeId", "ne", nil}}, false},
		{"employeeId eq '42' or mail eq 'x'", nil, true},
		{"employeeId eq 'unterminated", nil, true},
		{"employeeId gt 4", nil, true},
	}
	for _, tc := range cases {
		got, err := parseFilter(tc.in)
		if (err != nil) != tc.wantErr {
			t.Fatalf("parseFilter(%q) error %v", tc.in, err)
		}
		if len(got) != len(tc.want) {
			t.Fatalf("parseFilter(%q) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("parseFilter(%q)[%d] = %v, want %v", tc.in, i, got[i], tc.want[i])
			}
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"employeeId eq '1'", "startswith(mail,'a')", "a eq 'b''c' and d eq true", "x ne null"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cl, err := parseFilter(s)
		if err == nil && len(cl) == 0 && strings.TrimSpace(s) != "" {
			t.Fatalf("parseFilter(%q) accepted nothing without error", s)
		}
	})
}
