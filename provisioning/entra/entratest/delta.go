package entratest

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Delta tokens are change sequence numbers: a token returns the changes
// made after it. "$deltatoken=latest" answers no objects and a deltaLink for
// now ("sync from now", supported for directory objects,
// https://learn.microsoft.com/en-us/graph/delta-query-overview). Tokens
// handed out before ExpireDeltaLinks are refused as Graph refuses expired
// ones (docs/graph-behaviour.md#delta-queries).

type memberEvent struct {
	seq      uint64
	groupID  string
	memberID string
	removed  bool
}

// logMember records a membership change for groups/delta. Caller holds s.mu.
func (s *Server) logMember(groupID, memberID string, removed bool) {
	s.seq++
	s.memberLog = append(s.memberLog, memberEvent{seq: s.seq, groupID: groupID, memberID: memberID, removed: removed})
}

// ExpireDeltaLinks makes every delta token handed out so far invalid, as
// Graph refuses a delta link after seven days or a reset of its sync state:
// with gone, the answer is 410 Gone; otherwise 400 with the code
// syncStateNotFound (the answer Microsoft documents for expired links of
// identity resources).
func (s *Server) ExpireDeltaLinks(gone bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++ // later tokens differ from every earlier one
	s.deltaFloor = s.seq
	s.deltaGone = gone
}

// deltaToken parses $deltatoken: since is the sequence it stands for, latest
// is true for "latest"; a non-zero status means the error was written.
func (s *Server) deltaToken(c *reqCtx, dt string) (since uint64, latest bool, status int) {
	if dt == "" {
		return 0, false, 0
	}
	if strings.EqualFold(dt, "latest") {
		return 0, true, 0
	}
	n, err := strconv.ParseUint(dt, 10, 64)
	s.mu.Lock()
	expired := err == nil && n < s.deltaFloor
	gone := s.deltaGone
	s.mu.Unlock()
	switch {
	case err != nil || (expired && gone):
		c.graphError(http.StatusGone, "syncStateNotFound", "The sync state generation is not found.")
		return 0, false, http.StatusGone
	case expired:
		c.graphError(http.StatusBadRequest, "syncStateNotFound", "The sync state generation is not found. The delta token is expired and data must be synchronized again.")
		return 0, false, http.StatusBadRequest
	}
	return n, false, 0
}

// latestDeltaLink answers "$deltatoken=latest": no objects, a deltaLink for now.
func (s *Server) latestDeltaLink(c *reqCtx, context string) int {
	s.mu.Lock()
	seq := s.seq
	s.mu.Unlock()
	writeJSON(c.w, http.StatusOK, map[string]any{
		"@odata.context":   s.ts.URL + "/v1.0/$metadata#" + context,
		"value":            []any{},
		"@odata.deltaLink": s.linkWith(c.r, "$deltatoken", strconv.FormatUint(seq, 10)),
	})
	return http.StatusOK
}

// parseIDFilter reads groups/delta's $filter: "id eq '…' or id eq '…'"
// (the only filter it supports, at most 50 ids,
// https://learn.microsoft.com/en-us/graph/api/group-delta).
func parseIDFilter(f string) ([]string, error) {
	if strings.TrimSpace(f) == "" {
		return nil, nil
	}
	var ids []string
	for _, part := range strings.Split(f, " or ") {
		part = strings.TrimSpace(part)
		rest, ok := strings.CutPrefix(part, "id eq '")
		if !ok || !strings.HasSuffix(rest, "'") {
			return nil, fmt.Errorf("unsupported filter clause %q", part)
		}
		ids = append(ids, strings.TrimSuffix(rest, "'"))
	}
	if len(ids) > 50 {
		return nil, fmt.Errorf("the filter names %d ids; at most 50 are supported", len(ids))
	}
	return ids, nil
}

func memberRef(id string, removed bool) map[string]any {
	m := map[string]any{"@odata.type": "#microsoft.graph.user", "id": id}
	if removed {
		m["@removed"] = map[string]any{"reason": "deleted"}
	}
	return m
}

// deltaGroups implements GET /groups/delta for membership tracking
// ($select including members, $filter on ids): the first round lists each
// group with all its members in members@delta; a deltaLink round lists only
// the groups whose membership changed, with the members added and the
// members removed (@removed). One page; other group properties are not
// tracked.
func (s *Server) deltaGroups(c *reqCtx) int {
	v := c.r.URL.Query()
	ids, err := parseIDFilter(v.Get("$filter"))
	if err != nil {
		c.graphError(http.StatusBadRequest, "Request_UnsupportedQuery", err.Error())
		return http.StatusBadRequest
	}
	sel := strings.Split(v.Get("$select"), ",")
	withMembers := slices.Contains(sel, "members")
	since, latest, st := s.deltaToken(c, v.Get("$deltatoken"))
	if st != 0 {
		return st
	}
	if latest {
		return s.latestDeltaLink(c, "groups")
	}
	wanted := func(gid string) bool { return len(ids) == 0 || slices.Contains(ids, gid) }
	s.mu.Lock()
	var items []map[string]any
	if since == 0 {
		for _, gid := range s.order {
			if !wanted(gid) {
				continue
			}
			g := s.groups[gid]
			it := map[string]any{"id": gid}
			if withMembers {
				refs := []map[string]any{}
				for _, mid := range g.members {
					if u, ok := s.users[mid]; ok && !u.deleted {
						refs = append(refs, memberRef(mid, false))
					}
				}
				it["members@delta"] = refs
			}
			items = append(items, it)
		}
	} else if withMembers {
		last := map[[2]string]bool{} // (group, member) → removed, the last change wins
		var order [][2]string
		for _, ev := range s.memberLog {
			k := [2]string{ev.groupID, ev.memberID}
			if ev.seq <= since || !wanted(ev.groupID) {
				continue
			}
			if _, ok := last[k]; !ok {
				order = append(order, k)
			}
			last[k] = ev.removed
		}
		byGroup := map[string]map[string]any{}
		for _, k := range order {
			it, ok := byGroup[k[0]]
			if !ok {
				it = map[string]any{"id": k[0], "members@delta": []map[string]any{}}
				byGroup[k[0]] = it
				items = append(items, it)
			}
			it["members@delta"] = append(it["members@delta"].([]map[string]any), memberRef(k[1], last[k]))
		}
	}
	seq := s.seq
	s.mu.Unlock()
	if items == nil {
		items = []map[string]any{}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{
		"@odata.context":   s.ts.URL + "/v1.0/$metadata#groups",
		"value":            items,
		"@odata.deltaLink": s.linkWith(c.r, "$deltatoken", strconv.FormatUint(seq, 10)),
	})
	return http.StatusOK
}

// UpdateUser changes a user's properties as an administrator editing the
// account in the portal would (a nil value clears the property); users/delta
// reports the change. It reports whether the user exists.
func (s *Server) UpdateUser(id string, props map[string]any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.users[id]
	if !ok {
		return false
	}
	for k, v := range props {
		if v == nil {
			delete(o.props, k)
		} else {
			o.props[k] = normalise(v)
		}
	}
	s.seq++
	o.seq = s.seq
	return true
}

// AddMember and RemoveMember change a group's membership as an
// administrator would by hand; groups/delta reports the change. They report
// whether anything changed.
func (s *Server) AddMember(groupID, memberID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[groupID]
	if !ok || slices.Contains(g.members, memberID) {
		return false
	}
	g.members = append(g.members, memberID)
	s.logMember(groupID, memberID, false)
	return true
}

func (s *Server) RemoveMember(groupID, memberID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[groupID]
	if !ok {
		return false
	}
	i := slices.Index(g.members, memberID)
	if i < 0 {
		return false
	}
	g.members = slices.Delete(g.members, i, i+1)
	s.logMember(groupID, memberID, true)
	return true
}
