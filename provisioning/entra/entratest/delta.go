package entratest

import (
	"encoding/base64"
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

// GroupDeltaPageRefs is how many member references one groups/delta page
// carries at most. Graph documents that a big group's members@delta is
// split over several pages, that the same group then comes back on later
// pages with the next part of its members, and that a client must not
// assume an order (https://learn.microsoft.com/en-us/graph/delta-query-groups#paging-through-members-in-a-large-group),
// but not how many references a page holds; a group of 9,993 members came
// back in 20 pages (about 500 each) in
// https://github.com/microsoftgraph/msgraph-sdk-dotnet/issues/574.
const GroupDeltaPageRefs = 500

// groupDeltaChunk is how many of one group's members go out before the
// other groups of the round get their turn: the parts of a big group are
// spread over the round, interleaved with other groups, so a client that
// expects a group's members in one piece, or in one run of pages, fails.
const groupDeltaChunk = 250

// deltaRef is one member reference of a round: listed or added, or removed.
type deltaRef struct {
	groupID  string
	memberID string
	removed  bool
}

// deltaGroups implements GET /groups/delta for membership tracking
// ($select including members, $filter on ids). The first round lists each
// group with all its members in members@delta (a group without members
// comes without the property); a deltaLink round lists only the groups
// whose membership changed, with the members added and the members
// removed (@removed). Both page at GroupDeltaPageRefs references, a big
// group's members in parts interleaved with the other groups. A round is
// answered as of the change sequence it started at (carried in its
// $skiptoken), so changes made while a client pages are not lost: the
// round's deltaLink returns them.
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
	offset, start := 0, uint64(0)
	if tok := v.Get("$skiptoken"); tok != "" {
		var ok bool
		if offset, start, ok = parseSkipToken(tok); !ok {
			c.graphError(http.StatusBadRequest, "Directory_ExpiredPageToken", "The specified page token value has expired and can no longer be included in your request.")
			return http.StatusBadRequest
		}
	}
	wanted := func(gid string) bool { return len(ids) == 0 || slices.Contains(ids, gid) }
	s.mu.Lock()
	if start == 0 {
		start = s.seq
	}
	var refs []deltaRef
	var empty []string // groups listed without members (first round)
	if since == 0 {
		state := s.membersAt(start, wanted)
		var lists [][]deltaRef
		for _, gid := range s.order {
			if !wanted(gid) {
				continue
			}
			if !withMembers || len(state[gid]) == 0 {
				empty = append(empty, gid)
				continue
			}
			var l []deltaRef
			for _, mid := range state[gid] {
				l = append(l, deltaRef{groupID: gid, memberID: mid})
			}
			lists = append(lists, l)
		}
		refs = interleave(lists, groupDeltaChunk)
	} else if withMembers {
		last := map[[2]string]bool{} // (group, member) → removed, the last change wins
		var order [][2]string
		for _, ev := range s.memberLog {
			k := [2]string{ev.groupID, ev.memberID}
			if ev.seq <= since || ev.seq > start || !wanted(ev.groupID) {
				continue
			}
			if _, ok := last[k]; !ok {
				order = append(order, k)
			}
			last[k] = ev.removed
		}
		for _, k := range order {
			refs = append(refs, deltaRef{groupID: k[0], memberID: k[1], removed: last[k]})
		}
	}
	s.mu.Unlock()

	var items []map[string]any
	if offset == 0 {
		for _, gid := range empty {
			items = append(items, map[string]any{"id": gid})
		}
	}
	end := min(offset+GroupDeltaPageRefs, len(refs))
	byGroup := map[string]map[string]any{}
	for _, r := range refs[min(offset, len(refs)):end] {
		it, ok := byGroup[r.groupID]
		if !ok {
			it = map[string]any{"id": r.groupID, "members@delta": []map[string]any{}}
			byGroup[r.groupID] = it
			items = append(items, it)
		}
		it["members@delta"] = append(it["members@delta"].([]map[string]any), memberRef(r.memberID, r.removed))
	}
	if items == nil {
		items = []map[string]any{}
	}
	resp := map[string]any{"@odata.context": s.ts.URL + "/v1.0/$metadata#groups", "value": items}
	s.deltaPageLink(c.r, resp, end < len(refs), end, start, since)
	writeJSON(c.w, http.StatusOK, resp)
	return http.StatusOK
}

// deltaPageLink ends a delta page: a nextLink to the page after end when
// the round has more, else the round's deltaLink, which returns what
// changed since the round began (start), also what changed while the
// client paged. since is the deltatoken the round was asked with (0 for a
// first round).
func (s *Server) deltaPageLink(r *http.Request, resp map[string]any, more bool, end int, start, since uint64) {
	if more {
		link := s.linkWith(r, "$skiptoken", skipToken(end, start))
		if since > 0 {
			link += "&$deltatoken=" + strconv.FormatUint(since, 10)
		}
		resp["@odata.nextLink"] = link
		return
	}
	resp["@odata.deltaLink"] = s.linkWith(r, "$deltatoken", strconv.FormatUint(start, 10))
}

// skipToken encodes a page position and the change sequence the round
// started at; parseSkipToken reads it back.
func skipToken(offset int, start uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset) + "." + strconv.FormatUint(start, 10)))
}

func parseSkipToken(tok string) (offset int, start uint64, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, 0, false
	}
	o, st, found := strings.Cut(string(b), ".")
	n, err1 := strconv.Atoi(o)
	if !found {
		return n, 0, err1 == nil && n >= 0
	}
	seq, err2 := strconv.ParseUint(st, 10, 64)
	return n, seq, err1 == nil && err2 == nil && n >= 0
}

// membersAt returns every group's user members as they were at change
// sequence seq (the membership changes logged after it undone), sorted,
// so that the pages of one round agree whatever changes meanwhile.
// Members whose account is deleted are left out; only wanted groups are
// built. Caller holds s.mu.
func (s *Server) membersAt(seq uint64, wanted func(groupID string) bool) map[string][]string {
	sets := make(map[string]map[string]bool, len(s.groups))
	for gid, g := range s.groups {
		if !wanted(gid) {
			continue
		}
		set := make(map[string]bool, len(g.members))
		for _, m := range g.members {
			set[m] = true
		}
		sets[gid] = set
	}
	for i := len(s.memberLog) - 1; i >= 0 && s.memberLog[i].seq > seq; i-- {
		ev := s.memberLog[i]
		if set := sets[ev.groupID]; set != nil {
			if ev.removed {
				set[ev.memberID] = true
			} else {
				delete(set, ev.memberID)
			}
		}
	}
	out := make(map[string][]string, len(sets))
	for gid, set := range sets {
		l := make([]string, 0, len(set))
		for m := range set {
			if u, ok := s.users[m]; ok && !u.deleted {
				l = append(l, m)
			}
		}
		slices.Sort(l)
		out[gid] = l
	}
	return out
}

// interleave takes chunk references from each list in turn until all are
// used up.
func interleave(lists [][]deltaRef, chunk int) []deltaRef {
	var out []deltaRef
	for round := 0; ; round++ {
		took := false
		for _, l := range lists {
			lo := round * chunk
			if lo >= len(l) {
				continue
			}
			out = append(out, l[lo:min(lo+chunk, len(l))]...)
			took = true
		}
		if !took {
			return out
		}
	}
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
