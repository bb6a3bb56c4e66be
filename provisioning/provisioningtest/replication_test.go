package provisioningtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// The replication lag: a created or restored user is missing from the
// filtered and listing reads (and, as asked, from reads by id, or still in
// the deleted-items listing) until Replicate; its name is taken at once.
// A lost answer: the write happens, the caller gets a transient error.
func TestReplicationLag(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		lag  provisioningtest.Lag
	}{
		{"filtered reads", provisioningtest.Lag{}},
		{"by id too", provisioningtest.Lag{ByID: true}},
		{"deleted listing", provisioningtest.Lag{DeletedListing: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := provisioningtest.NewDirectory()
			gone := d.AddDeletedUser(provisioning.User{UserPrincipalName: "old@example.com", EmployeeID: "2"}, time.Now().Add(-time.Hour))
			d.LagWrites(tt.lag)
			d.LoseAnswer("CreateUser")
			_, err := d.CreateUser(ctx, provisioning.NewUser{UserPrincipalName: "new@example.com", Attributes: map[string]string{"employeeId": "1"}})
			if !errors.Is(err, provisioning.ErrTransient) {
				t.Fatalf("lost answer: %v", err)
			}
			if _, err := d.CreateUser(ctx, provisioning.NewUser{UserPrincipalName: "new@example.com"}); !errors.Is(err, provisioning.ErrConflict) {
				t.Errorf("the name of the lost create is not taken: %v", err)
			}
			if _, err := d.RestoreDeletedUser(ctx, gone, provisioning.RestoreOptions{}); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"1", "2"} {
				if got, _ := d.FindUsers(ctx, "employeeId", id); len(got) != 0 {
					t.Errorf("employeeId %s found before replication: %+v", id, got)
				}
			}
			if all, _ := d.ListUsers(ctx); len(all) != 0 {
				t.Errorf("listed before replication: %+v", all)
			}
			if _, err := d.GetUser(ctx, gone); (err != nil) != tt.lag.ByID {
				t.Errorf("GetUser before replication: %v (lag by id: %v)", err, tt.lag.ByID)
			}
			if del, _ := d.FindDeletedUsers(ctx, "2"); (len(del) == 1) != tt.lag.DeletedListing {
				t.Errorf("deleted listing before replication: %+v", del)
			}
			d.Replicate()
			for _, id := range []string{"1", "2"} {
				if got, _ := d.FindUsers(ctx, "employeeId", id); len(got) != 1 {
					t.Errorf("employeeId %s after replication: %+v", id, got)
				}
			}
			if del, _ := d.FindDeletedUsers(ctx, "2"); len(del) != 0 {
				t.Errorf("still deleted after replication: %+v", del)
			}
			if _, err := d.GetUser(ctx, gone); err != nil {
				t.Error(err)
			}
		})
	}
}
