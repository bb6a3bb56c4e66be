package provisioning_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// bulkDirectory is the in-memory directory read as Microsoft Graph is read
// by the complete sync: through BulkReader delta rounds. The plain
// complete reads (ListUsers, ListGroupMembers) are refused, so a complete
// read that does not go through the BulkReader fails.
type bulkDirectory struct {
	*provisioningtest.Directory
	userRounds, memberRounds int
}

var errPlainRead = errors.New("the complete read must go through the BulkReader")

func (d *bulkDirectory) ListUsers(context.Context) ([]provisioning.User, error) {
	return nil, errPlainRead
}

func (d *bulkDirectory) ListGroupMembers(context.Context, string) ([]string, error) {
	return nil, errPlainRead
}

func (d *bulkDirectory) ListUsersDelta(ctx context.Context) ([]provisioning.User, string, error) {
	d.userRounds++
	users, err := d.Directory.ListUsers(ctx)
	return users, "users-link", err
}

func (d *bulkDirectory) GroupMembersRound(ctx context.Context, groupIDs []string) (map[string][]string, string, error) {
	d.memberRounds++
	out := make(map[string][]string, len(groupIDs))
	for _, id := range groupIDs {
		m, err := d.Directory.ListGroupMembers(ctx, id)
		if err != nil {
			return nil, "", err
		}
		out[id] = m
	}
	return out, "groups-link", nil
}

// The rules-change preview reads Entra and Personio as the complete sync
// does (one complete read): delta rounds from a BulkReader, Personio page by
// page from a PagedSource. The preview over such a directory and source is
// the same as over the plain ones, and the complete sync over them finds
// the same drift.
func TestPreviewAndCompleteSyncShareTheCompleteRead(t *testing.T) {
	env, cand := previewEnv(t, provisioning.GuardSettings{MaxCount: 5})
	ctx := context.Background()
	want, err := provisioning.PreviewRules(ctx, env.eng, cand)
	if err != nil {
		t.Fatal(err)
	}
	wantDrift, err := env.eng.Drift(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}

	dir := &bulkDirectory{Directory: env.dir}
	src := &pagedSource{Source: env.src}
	eng := env.engineWith(t, src, dir, provisioning.GuardSettings{MaxCount: 5})

	got, err := provisioning.PreviewRules(ctx, eng, cand)
	if err != nil {
		t.Fatalf("preview over a BulkReader and a PagedSource: %v", err)
	}
	if dir.userRounds != 1 || dir.memberRounds != 1 || src.pages == 0 {
		t.Errorf("preview read %d users rounds, %d member rounds, %d Personio pages; want 1, 1 and some", dir.userRounds, dir.memberRounds, src.pages)
	}
	wj, _ := json.MarshalIndent(want, "", " ")
	gj, _ := json.MarshalIndent(got, "", " ")
	if string(wj) != string(gj) {
		t.Errorf("the preview differs with the complete read:\n got %s\nwant %s", gj, wj)
	}

	drift, err := eng.Drift(ctx, nil)
	if err != nil {
		t.Fatalf("complete sync over a BulkReader and a PagedSource: %v", err)
	}
	ids := func(ps []provisioning.Plan) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.PersonID)
		}
		return out
	}
	if !slices.Equal(ids(drift), ids(wantDrift)) || len(drift) == 0 {
		t.Errorf("complete sync drift %v, want %v", ids(drift), ids(wantDrift))
	}
	if dir.userRounds != 2 || dir.memberRounds != 2 {
		t.Errorf("after the sync: %d users rounds, %d member rounds; want 2 and 2", dir.userRounds, dir.memberRounds)
	}
}
