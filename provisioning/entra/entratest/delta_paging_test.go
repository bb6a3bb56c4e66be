package entratest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// getLink follows an absolute nextLink or deltaLink of the simulator.
func getLink(t *testing.T, s *Server, tok, link string) map[string]any {
	t.Helper()
	path, ok := strings.CutPrefix(link, s.GraphURL())
	if !ok {
		t.Fatalf("link %q does not point back at the simulator", link)
	}
	st, _, body := do(t, s, tok, call{method: "GET", path: path})
	if st != 200 {
		t.Fatalf("GET %s: %d %v", path, st, body)
	}
	return body
}

// TestGroupsDeltaPaging: groups/delta pages members@delta at
// GroupDeltaPageRefs references, a big group's members in parts that come
// back on several pages interleaved with other groups (as Graph documents
// for large groups), the parts add up to the whole membership, and the
// round's deltaLink reports what changed while the client paged.
func TestGroupsDeltaPaging(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	_, tb := token(t, s, DefaultSecret)
	tok := tb["access_token"].(string)
	var users []string
	for i := range 1300 {
		users = append(users, s.AddUser(User{UserPrincipalName: fmt.Sprintf("u%d@example.com", i), EmployeeID: fmt.Sprint(i + 1)}))
	}
	big := s.AddGroup(Group{DisplayName: "Big", SecurityEnabled: true, Members: users[:1200]})
	small := s.AddGroup(Group{DisplayName: "Small", SecurityEnabled: true, Members: users[1200:]})
	empty := s.AddGroup(Group{DisplayName: "Empty", SecurityEnabled: true})
	filter := fmt.Sprintf("id eq '%s' or id eq '%s' or id eq '%s'", big, small, empty)
	path := "/groups/delta?$select=members&$filter=" + url.QueryEscape(filter)
	st, _, body := do(t, s, tok, call{method: "GET", path: path})
	if st != 200 {
		t.Fatalf("groups delta: %d %v", st, body)
	}

	got := map[string][]string{}
	var seen []string // group ids in the order their parts came
	pages := 0
	var deltaLink string
	for {
		pages++
		refs := 0
		for _, it := range body["value"].([]any) {
			g := it.(map[string]any)
			id := g["id"].(string)
			seen = append(seen, id)
			list, has := g["members@delta"].([]any)
			if id == empty && has {
				t.Fatalf("the empty group came with members@delta %v", list)
			}
			for _, m := range list {
				got[id] = append(got[id], m.(map[string]any)["id"].(string))
				refs++
			}
		}
		if refs > GroupDeltaPageRefs {
			t.Fatalf("page %d carried %d member references, more than %d", pages, refs, GroupDeltaPageRefs)
		}
		if next, ok := body["@odata.nextLink"].(string); ok {
			if pages == 1 {
				// Changed while the client pages: reported by the
				// round's deltaLink, not lost.
				s.RemoveMember(big, users[1199])
				s.AddMember(small, users[0])
			}
			body = getLink(t, s, tok, next)
			continue
		}
		deltaLink, _ = body["@odata.deltaLink"].(string)
		break
	}
	if want := (1300 + GroupDeltaPageRefs - 1) / GroupDeltaPageRefs; pages != want {
		t.Fatalf("%d pages, want %d", pages, want)
	}
	if !slices.Equal(slices.Sorted(slices.Values(got[big])), slices.Sorted(slices.Values(users[:1200]))) || len(got[small]) != 100 {
		t.Fatalf("parts add up to %d and %d members, want the 1200 and 100 of the round's start", len(got[big]), len(got[small]))
	}
	if !slices.Contains(seen, empty) {
		t.Fatal("the empty group was not listed")
	}
	// Big's parts are not one run: another group comes between them.
	first := slices.Index(seen, big)
	lastBig := 0
	for i, id := range seen {
		if id == big {
			lastBig = i
		}
	}
	if !slices.Contains(seen[first:lastBig], small) {
		t.Fatalf("the big group's parts came in one run (%v); Graph may interleave them with other groups", seen)
	}

	body = getLink(t, s, tok, deltaLink)
	changes := map[string]bool{}
	for _, it := range body["value"].([]any) {
		g := it.(map[string]any)
		for _, m := range g["members@delta"].([]any) {
			mm := m.(map[string]any)
			_, removed := mm["@removed"]
			changes[g["id"].(string)+"/"+mm["id"].(string)] = removed
		}
	}
	if len(changes) != 2 || changes[big+"/"+users[1199]] != true || changes[small+"/"+users[0]] != false {
		t.Fatalf("the round's deltaLink reported %v, want the removal and the addition made while paging", changes)
	}
}

// TestUsersDeltaRoundStart: a users/delta round's deltaLink reports a user
// changed while the client paged, also one on a page already read.
func TestUsersDeltaRoundStart(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	_, tb := token(t, s, DefaultSecret)
	tok := tb["access_token"].(string)
	var users []string
	for i := range 3 * DeltaPageSize {
		users = append(users, s.AddUser(User{UserPrincipalName: fmt.Sprintf("u%d@example.com", i), EmployeeID: fmt.Sprint(i + 1)}))
	}
	st, _, body := do(t, s, tok, call{method: "GET", path: "/users/delta?$select=id,jobTitle"})
	if st != 200 {
		t.Fatalf("users delta: %d %v", st, body)
	}
	s.UpdateUser(users[0], map[string]any{"jobTitle": "Changed while paging"})
	listed := len(body["value"].([]any))
	for {
		next, ok := body["@odata.nextLink"].(string)
		if !ok {
			break
		}
		body = getLink(t, s, tok, next)
		listed += len(body["value"].([]any))
	}
	if listed != len(users) {
		t.Fatalf("the round listed %d users, want %d", listed, len(users))
	}
	body = getLink(t, s, tok, body["@odata.deltaLink"].(string))
	v := body["value"].([]any)
	if len(v) != 1 || v[0].(map[string]any)["id"] != users[0] {
		t.Fatalf("the round's deltaLink reported %v, want the user changed while paging", v)
	}
}
