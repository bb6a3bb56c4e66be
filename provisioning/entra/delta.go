package entra

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/personio-entra/personio-entra/provisioning"
)

// Delta queries for the incremental sync
// (docs/graph-behaviour.md#delta-queries). An empty link starts tracking
// from now with $deltatoken=latest: one request, no objects. A stored link is
// followed verbatim through its nextLinks to the next deltaLink.

var _ provisioning.DeltaDirectory = (*Directory)(nil)

// deltaStart is the URL of a delta function with the query options and
// $deltatoken=latest ("sync from now", supported for directory objects,
// https://learn.microsoft.com/en-us/graph/delta-query-overview).
func (d *Directory) deltaStart(resource string, opts [][2]string) string {
	return d.deltaURL(resource, append(opts, [2]string{"$deltatoken", "latest"}))
}

// deltaURL is the URL of a delta function with the query options.
func (d *Directory) deltaURL(resource string, opts [][2]string) string {
	var q []string
	for _, o := range opts {
		q = append(q, o[0]+"="+strings.ReplaceAll(url.QueryEscape(o[1]), "+", "%20"))
	}
	return d.graphURL + "/" + resource + "/delta?" + strings.Join(q, "&")
}

// deltaFail classifies a delta read's failure; a link Graph no longer
// accepts (410 Gone, or 400 with syncStateNotFound or syncStateInvalid)
// also matches provisioning.ErrDeltaExpired.
func (d *Directory) deltaFail(op string, err error) error {
	de := d.fail(op, err)
	if g, ok := inspect(err); ok && deltaExpired(g) {
		return fmt.Errorf("%w: %w", provisioning.ErrDeltaExpired, de)
	}
	return de
}

func deltaExpired(g graphErr) bool {
	if g.status == http.StatusGone {
		return true
	}
	switch strings.ToLower(g.code) {
	case "syncstatenotfound", "syncstateinvalid", "resyncrequired":
		return g.status == http.StatusBadRequest
	}
	return false
}

// UsersDelta follows the users delta link (GET /users/delta with the
// compared properties and manager in $select, so that manager changes are
// reported too). A changed user may carry only the properties that changed.
func (d *Directory) UsersDelta(ctx context.Context, link string) ([]provisioning.UserChange, string, error) {
	ctx = withOp(ctx, "users_delta")
	if link == "" {
		sel := append(d.userSelect(), "manager")
		link = d.deltaStart("users", [][2]string{{"$select", strings.Join(sel, ",")}})
	}
	b := d.client.Users().Delta()
	var out []provisioning.UserChange
	for page := 1; ; page++ {
		resp, err := b.WithUrl(link).GetAsDeltaGetResponse(ctx, nil)
		if err != nil {
			return nil, "", d.deltaFail(fmt.Sprintf("users delta (page %d)", page), err)
		}
		for _, u := range resp.GetValue() {
			if _, removed := u.GetAdditionalData()["@removed"]; removed {
				out = append(out, provisioning.UserChange{User: provisioning.User{ID: deref(u.GetId())}, Removed: true})
				continue
			}
			pu := toUser(u)
			pu.ManagerID = deltaManager(u.GetAdditionalData())
			out = append(out, provisioning.UserChange{User: pu})
		}
		if next := deref(resp.GetOdataNextLink()); next != "" {
			link = next
			continue
		}
		next := deref(resp.GetOdataDeltaLink())
		if next == "" {
			return nil, "", &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: "users delta",
				Message: "the last page carried neither a nextLink nor a deltaLink"}
		}
		return out, next, nil
	}
}

// GroupMembersDelta follows the group members delta link (GET
// /groups/delta?$select=members&$filter=id eq '…' or …, at most 50 groups).
// The first round of a delta without $deltatoken=latest lists every member;
// a deltaLink round lists the members added and removed (members@delta,
// removed ones with @removed).
func (d *Directory) GroupMembersDelta(ctx context.Context, groupIDs []string, link string) ([]provisioning.MemberChange, string, error) {
	const op = "group members delta"
	ctx = withOp(ctx, "groups_delta")
	if link == "" {
		filter, err := groupsFilter(op, groupIDs)
		if err != nil {
			return nil, "", err
		}
		link = d.deltaStart("groups", [][2]string{{"$select", "members"}, {"$filter", filter}})
	}
	var out []provisioning.MemberChange
	next, err := d.groupsDeltaPages(ctx, op, link, func(gid string, refs []deltaRef) {
		for _, m := range refs {
			out = append(out, provisioning.MemberChange{GroupID: gid, UserID: m.id, Removed: m.removed})
		}
	})
	if err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// groupsFilter is the $filter of a groups delta over groupIDs (1 to
// provisioning.MaxDeltaGroups of them).
func groupsFilter(op string, groupIDs []string) (string, error) {
	if len(groupIDs) == 0 || len(groupIDs) > provisioning.MaxDeltaGroups {
		return "", &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op,
			Message: fmt.Sprintf("a group delta reads 1 to %d groups, not %d", provisioning.MaxDeltaGroups, len(groupIDs))}
	}
	clauses := make([]string, len(groupIDs))
	for i, id := range groupIDs {
		clauses[i] = fmt.Sprintf("id eq '%s'", escapeOData(id))
	}
	return strings.Join(clauses, " or "), nil
}

// groupsDeltaPages follows a groups delta round from link through its
// nextLinks, calls fn for every group in every page with its member changes
// (none for a group sent without members@delta), and returns the round's
// deltaLink.
func (d *Directory) groupsDeltaPages(ctx context.Context, op, link string, fn func(groupID string, refs []deltaRef)) (string, error) {
	b := d.client.Groups().Delta()
	for page := 1; ; page++ {
		resp, err := b.WithUrl(link).GetAsDeltaGetResponse(ctx, nil)
		if err != nil {
			return "", d.deltaFail(fmt.Sprintf("%s (page %d)", op, page), err)
		}
		for _, g := range resp.GetValue() {
			gid := deref(g.GetId())
			if gid == "" {
				continue
			}
			fn(gid, deltaRefs(g.GetAdditionalData()["members@delta"]))
		}
		if next := deref(resp.GetOdataNextLink()); next != "" {
			link = next
			continue
		}
		next := deref(resp.GetOdataDeltaLink())
		if next == "" {
			return "", &provisioning.DirectoryError{Kind: provisioning.KindTransient, Op: op,
				Message: "the last page carried neither a nextLink nor a deltaLink"}
		}
		return next, nil
	}
}

type deltaRef struct {
	id      string
	removed bool
}

// deltaRefs reads a navigation property's @delta list:
// [{"@odata.type": ..., "id": ..., "@removed": {...}}]. Only users are kept
// (a nested group's membership is not a person's).
func deltaRefs(v any) []deltaRef {
	list, _ := v.([]any)
	var out []deltaRef
	for _, item := range list {
		m, _ := item.(map[string]any)
		if t := str(m["@odata.type"]); t != "" && !strings.EqualFold(t, "#microsoft.graph.user") {
			continue
		}
		id := str(m["id"])
		if id == "" {
			continue
		}
		_, removed := m["@removed"]
		out = append(out, deltaRef{id: id, removed: removed})
	}
	return out
}

func str(v any) string {
	switch s := v.(type) {
	case *string:
		return deref(s)
	case string:
		return s
	}
	return ""
}
