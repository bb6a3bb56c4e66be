package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// recordingBackend records the admin calls it receives.
type recordingBackend struct {
	calls []string
}

func (b *recordingBackend) rec(s string) { b.calls = append(b.calls, s) }
func (b *recordingBackend) Plan(_ context.Context, id string) (any, error) {
	b.rec("plan " + id)
	switch id {
	case "404":
		return nil, fmt.Errorf("person 404: %w", ErrNotFound)
	case "503":
		return nil, fmt.Errorf("read Personio: connection refused: %w", ErrUnavailable)
	case "500":
		return nil, fmt.Errorf("rules cannot be evaluated")
	}
	return map[string]string{"person_id": id}, nil
}
func (b *recordingBackend) PlanAll(context.Context) (any, error) {
	b.rec("planall")
	return []int{}, nil
}
func (b *recordingBackend) Enqueue(_ context.Context, id, reason string) error {
	b.rec("enqueue " + id + " " + reason)
	return nil
}
func (b *recordingBackend) FullSync(context.Context) (any, error) {
	b.rec("sync")
	return map[string]int{"drifting": 0}, nil
}
func (b *recordingBackend) Audit(_ context.Context, id string, limit int) ([]json.RawMessage, error) {
	b.rec(fmt.Sprintf("audit %s %d", id, limit))
	return []json.RawMessage{json.RawMessage(`{"person_id":"1"}`)}, nil
}
func (b *recordingBackend) Approvals(context.Context) (any, error) {
	b.rec("approvals")
	return []int{}, nil
}
func (b *recordingBackend) Approve(_ context.Context, id string) (any, error) {
	b.rec("approve " + id)
	return map[string]string{"id": id}, nil
}
func (b *recordingBackend) DeadLetters(context.Context) (any, error) {
	b.rec("dl")
	return []int{}, nil
}
func (b *recordingBackend) Redrive(_ context.Context, seq uint64) error {
	b.rec(fmt.Sprintf("redrive %d", seq))
	return nil
}
func (b *recordingBackend) PurgeDeadLetter(_ context.Context, seq uint64) error {
	b.rec(fmt.Sprintf("purge %d", seq))
	return nil
}

func (b *recordingBackend) Explain(_ context.Context, id string) (any, error) {
	b.rec("explain " + id)
	if id == "404" {
		return nil, fmt.Errorf("person 404: %w", ErrNotFound)
	}
	return map[string]any{"person_id": id, "desired": map[string]any{"explain": map[string]string{"phase_reason": "employed"}}}, nil
}
func (b *recordingBackend) PreviewRules(_ context.Context, name string, data []byte) (any, error) {
	b.rec(fmt.Sprintf("preview %s %d", name, len(data)))
	if strings.Contains(string(data), "broken") {
		return nil, fmt.Errorf("load: %w", &InvalidInput{Message: "the candidate rules have 1 problem(s)",
			Problems: []map[string]any{{"file": name, "line": 3, "col": 5, "text": name + ":3:5: unknown key \"broken\""}}})
	}
	return map[string]any{"candidate_rules": name, "people": []int{}}, nil
}

func TestAdminAPI(t *testing.T) {
	const token = "0123456789abcdef0123"
	b := &recordingBackend{}
	srv := httptest.NewServer(http.StripPrefix("/admin", Admin(token, b, slog.New(slog.NewTextHandler(io.Discard, nil)))))
	defer srv.Close()

	tests := []struct {
		method, path, auth string
		status             int
		call               string // expected backend call ("" none)
		body               string // substring of the response
	}{
		{"GET", "/admin/plan/1001", "", 401, "", "bearer token"},
		{"GET", "/admin/plan/1001", "Bearer wrong", 401, "", "bearer token"},
		{"GET", "/admin/plan/1001", token, 401, "", "bearer token"}, // scheme required
		{"GET", "/admin/plan/1001", "Bearer " + token, 200, "plan 1001", `"person_id": "1001"`},
		{"GET", "/admin/plan/404", "Bearer " + token, 404, "plan 404", "not found"},
		{"GET", "/admin/plan/503", "Bearer " + token, 503, "plan 503", "connection refused"},
		{"GET", "/admin/plan/500", "Bearer " + token, 500, "plan 500", "rules cannot"},
		{"GET", "/admin/plan/bad%20id", "Bearer " + token, 400, "", "person id"},
		{"GET", "/admin/plan", "Bearer " + token, 200, "planall", "[]"},
		{"GET", "/admin/plan/1001?explain=1", "Bearer " + token, 200, "explain 1001", `"phase_reason": "employed"`},
		{"GET", "/admin/plan/1001?explain=0", "Bearer " + token, 200, "plan 1001", `"person_id": "1001"`},
		{"GET", "/admin/explain/1001", "Bearer " + token, 200, "explain 1001", `"phase_reason": "employed"`},
		{"GET", "/admin/explain/404", "Bearer " + token, 404, "explain 404", "not found"},
		{"GET", "/admin/explain/bad%20id", "Bearer " + token, 400, "", "person id"},
		{"GET", "/admin/explain/1001", "", 401, "", "bearer token"},
		{"POST", "/admin/sync/1002", "Bearer " + token, 202, "enqueue 1002 admin", "queued"},
		{"POST", "/admin/sync", "Bearer " + token, 200, "sync", "drifting"},
		{"GET", "/admin/audit?employee=1003&limit=5", "Bearer " + token, 200, "audit 1003 5", "person_id"},
		{"GET", "/admin/audit?limit=0", "Bearer " + token, 400, "", "limit"},
		{"GET", "/admin/approvals", "Bearer " + token, 200, "approvals", "[]"},
		{"POST", "/admin/approvals/abc123/approve", "Bearer " + token, 200, "approve abc123", "abc123"},
		{"GET", "/admin/deadletters", "Bearer " + token, 200, "dl", "[]"},
		{"POST", "/admin/deadletters/7/redrive", "Bearer " + token, 202, "redrive 7", "redriven"},
		{"POST", "/admin/deadletters/x/redrive", "Bearer " + token, 400, "", "sequence"},
		{"DELETE", "/admin/deadletters/9", "Bearer " + token, 200, "purge 9", "purged"},
		{"GET", "/admin/nope", "Bearer " + token, 404, "", "no such admin endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.auth, func(t *testing.T) {
			b.calls = nil
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(string(body), tt.body) {
				t.Errorf("body %s does not contain %q", body, tt.body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var want []string
			if tt.call != "" {
				want = []string{tt.call}
			}
			if fmt.Sprint(b.calls) != fmt.Sprint(want) {
				t.Errorf("backend calls = %v, want %v", b.calls, want)
			}
		})
	}
}

// POST /admin/preview takes the candidate rules as the body: bounded in
// size, 400 with the loader's problems when they are invalid.
func TestAdminPreview(t *testing.T) {
	const token = "0123456789abcdef0123"
	b := &recordingBackend{}
	srv := httptest.NewServer(http.StripPrefix("/admin", Admin(token, b, slog.New(slog.NewTextHandler(io.Discard, nil)))))
	defer srv.Close()
	valid := "time_zone: Europe/Berlin\n"
	tests := []struct {
		name, query, body, auth string
		status                  int
		call                    string
		want                    string
	}{
		{"valid", "", valid, "Bearer " + token, 200, fmt.Sprintf("preview candidate.yaml %d", len(valid)), `"candidate_rules": "candidate.yaml"`},
		{"named", "?name=rules-v2.yaml", valid, "Bearer " + token, 200, fmt.Sprintf("preview rules-v2.yaml %d", len(valid)), `"candidate_rules": "rules-v2.yaml"`},
		{"invalid rules", "", "broken: 1\n", "Bearer " + token, 400, "preview candidate.yaml 10", `candidate.yaml:3:5: unknown key`},
		{"empty body", "", "  \n", "Bearer " + token, 400, "", "send the candidate rules"},
		{"too large", "", strings.Repeat("#", maxPreviewBody+1), "Bearer " + token, 413, "", "larger than"},
		{"bad name", "?name=../etc", valid, "Bearer " + token, 400, "", "name must be"},
		{"no token", "", valid, "", 401, "", "bearer token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b.calls = nil
			req, _ := http.NewRequest("POST", srv.URL+"/admin/preview"+tt.query, strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.status, body)
			}
			if !strings.Contains(string(body), tt.want) {
				t.Errorf("body %s does not contain %q", body, tt.want)
			}
			var want []string
			if tt.call != "" {
				want = []string{tt.call}
			}
			if fmt.Sprint(b.calls) != fmt.Sprint(want) {
				t.Errorf("backend calls = %v, want %v", b.calls, want)
			}
		})
	}
}
