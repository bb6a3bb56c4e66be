package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

func TestRequireLoopback(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"127.0.0.1:0", true}, {"[::1]:8080", true}, {"localhost:1", true}, {"127.0.0.2:9", true},
		{":8080", false}, {"0.0.0.0:8080", false}, {"10.1.2.3:80", false}, {"example.com:80", false}, {"127.0.0.1", false},
	}
	for _, tc := range tests {
		if err := requireLoopback(tc.addr); (err == nil) != tc.ok {
			t.Errorf("requireLoopback(%q) = %v, want ok=%t", tc.addr, err, tc.ok)
		}
	}
}

// frontFixture is the Personio simulator behind its front.
func frontFixture(t *testing.T) (front *httptest.Server, gate *unavailableGate) {
	t.Helper()
	p := personiotest.New(personiotest.Options{})
	t.Cleanup(p.Close)
	p.SetCompany(personiotest.GenerateCompany(5))
	gate = newUnavailableGate()
	// The front's public URL is only known once it listens.
	var h http.Handler
	front = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(front.Close)
	var err error
	if h, err = newPersonioFront(p.URL(), front.URL, gate, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	return front, gate
}

func token(t *testing.T, base string) (string, int) {
	t.Helper()
	resp, err := http.PostForm(base+"/v2/auth/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"sim-client-id"}, "client_secret": {"sim-client-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out.AccessToken, resp.StatusCode
}

func get(t *testing.T, u, tok string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

// An outage answers 503 in each API version's envelope, then ends by itself.
func TestPersonioFrontOutage(t *testing.T) {
	front, gate := frontFixture(t)
	tok, code := token(t, front.URL)
	if code != http.StatusOK || tok == "" {
		t.Fatalf("token through the front: %d", code)
	}
	gate.Set(300 * time.Millisecond)
	tests := []struct {
		path        string
		contentType string
		marker      string
	}{
		{"/v1/company/employees?limit=1", "application/json", `"success":false`},
		{"/v2/persons?limit=1", "application/problem+json", `"errors"`},
	}
	for _, tc := range tests {
		status, ct, body := get(t, front.URL+tc.path, tok)
		if status != http.StatusServiceUnavailable || ct != tc.contentType || !strings.Contains(body, tc.marker) {
			t.Errorf("%s during the outage: %d %s %s", tc.path, status, ct, body)
		}
	}
	if _, code := token(t, front.URL); code != http.StatusServiceUnavailable {
		t.Errorf("token endpoint during the outage: %d, want 503", code)
	}
	time.Sleep(350 * time.Millisecond)
	for _, tc := range tests {
		if status, _, body := get(t, front.URL+tc.path, tok); status != http.StatusOK {
			t.Errorf("%s after the outage: %d %s", tc.path, status, body)
		}
	}
	if _, n := gate.state(); n != 3 {
		t.Errorf("%d requests refused, want 3", n)
	}
}

// v2 next links point at the front, not at the simulator behind it.
func TestPersonioFrontRewritesLinks(t *testing.T) {
	front, _ := frontFixture(t)
	tok, _ := token(t, front.URL)
	status, _, body := get(t, front.URL+"/v2/persons?limit=2", tok)
	if status != http.StatusOK {
		t.Fatalf("list persons: %d %s", status, body)
	}
	var page struct {
		Meta struct {
			Links struct {
				Next struct {
					Href string `json:"href"`
				} `json:"next"`
			} `json:"links"`
		} `json:"_meta"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatal(err)
	}
	next := page.Meta.Links.Next.Href
	if !strings.HasPrefix(next, front.URL+"/v2/persons?") {
		t.Fatalf("next link %q does not point at the front %s", next, front.URL)
	}
	if status, _, body := get(t, next, tok); status != http.StatusOK || !strings.Contains(body, `"_data"`) {
		t.Errorf("following the next link: %d %s", status, body)
	}
}
