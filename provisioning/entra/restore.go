package entra

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	abstractions "github.com/microsoft/kiota-abstractions-go"
	"github.com/microsoftgraph/msgraph-sdk-go/directory"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"

	"github.com/personio-entra/personio-entra/provisioning"
)

var _ provisioning.DeletedUsers = (*Directory)(nil)

// FindDeletedUsers lists the soft-deleted users with the employeeId
// (GET /directory/deletedItems/microsoft.graph.user, the cast is required;
// https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-list).
// Deleted items take the user resource's query parameters, "some only with
// ConsistencyLevel: eventual and $count", without saying which; the filter
// is therefore sent in advanced query mode, which accepts everything the
// default mode does. Should Graph still refuse it (400
// Request_UnsupportedQuery), every deleted user is listed (at most 30 days
// of deletions, 999 a page) and filtered here.
func (d *Directory) FindDeletedUsers(ctx context.Context, employeeID string) ([]provisioning.DeletedUser, error) {
	ctx = withOp(ctx, "find_deleted_users")
	sel := append(d.userSelect(), "deletedDateTime")
	filter := "employeeId eq '" + escapeOData(employeeID) + "'"
	count, top := true, int32(999)
	cfg := &directory.DeletedItemsGraphUserRequestBuilderGetRequestConfiguration{
		Headers:         abstractions.NewRequestHeaders(),
		QueryParameters: &directory.DeletedItemsGraphUserRequestBuilderGetQueryParameters{Filter: &filter, Count: &count, Select: sel, Top: &top},
	}
	cfg.Headers.Add("ConsistencyLevel", "eventual")
	out, err := d.listDeleted(ctx, cfg, employeeID)
	var de *provisioning.DirectoryError
	if errors.As(err, &de) && de.Code == "Request_UnsupportedQuery" {
		d.log.Info("deleted items refused the employeeId filter; listing the deleted users instead", "message", de.Message)
		cfg.QueryParameters = &directory.DeletedItemsGraphUserRequestBuilderGetQueryParameters{Select: sel, Top: &top}
		cfg.Headers = abstractions.NewRequestHeaders()
		out, err = d.listDeleted(ctx, cfg, employeeID)
	}
	return out, err
}

func (d *Directory) listDeleted(ctx context.Context, cfg *directory.DeletedItemsGraphUserRequestBuilderGetRequestConfiguration, employeeID string) ([]provisioning.DeletedUser, error) {
	b := d.client.Directory().DeletedItems().GraphUser()
	resp, err := b.Get(ctx, cfg)
	out := []provisioning.DeletedUser{}
	for {
		if err != nil {
			return nil, d.fail("list deleted users", err)
		}
		for _, u := range resp.GetValue() {
			pu := toUser(u)
			if !strings.EqualFold(pu.EmployeeID, employeeID) {
				continue
			}
			du := provisioning.DeletedUser{User: pu}
			if t := u.GetDeletedDateTime(); t != nil {
				du.DeletedAt = t.UTC()
			}
			out = append(out, du)
		}
		next := resp.GetOdataNextLink()
		if next == nil || *next == "" {
			return out, nil
		}
		// Headers are not carried to the next page: send them again
		// (docs/graph-behaviour.md#paging).
		resp, err = b.WithUrl(*next).Get(ctx, &directory.DeletedItemsGraphUserRequestBuilderGetRequestConfiguration{Headers: cfg.Headers})
	}
}

// RestoreDeletedUser restores a soft-deleted user. Without options it is
// the v1.0 action, which takes no parameters
// (https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-restore).
// newUserPrincipalName and autoReconcileProxyConflict are documented on
// the beta endpoint only
// (https://learn.microsoft.com/en-us/graph/api/directory-deleteditems-restore?view=graph-rest-beta),
// so a restore that needs them is sent there, to the same host.
func (d *Directory) RestoreDeletedUser(ctx context.Context, id string, opts provisioning.RestoreOptions) (provisioning.User, error) {
	const op = "restore user"
	ctx = withOp(ctx, "restore_user")
	var obj models.DirectoryObjectable
	var err error
	if opts == (provisioning.RestoreOptions{}) {
		obj, err = d.client.Directory().DeletedItems().ByDirectoryObjectId(id).Restore().Post(ctx, nil)
	} else {
		obj, err = d.restoreBeta(ctx, id, opts)
	}
	if err != nil {
		return provisioning.User{}, d.fail(op, err)
	}
	u, ok := obj.(models.Userable)
	if !ok {
		return provisioning.User{ID: id, UserPrincipalName: opts.NewUserPrincipalName}, nil
	}
	out := toUser(u)
	if out.ID == "" {
		out.ID = id
	}
	d.markCreated(out.ID) // reads right after the restore may lag (replication)
	d.log.Info("deleted user restored", "user_id", out.ID, "upn", out.UserPrincipalName)
	return out, nil
}

func (d *Directory) restoreBeta(ctx context.Context, id string, opts provisioning.RestoreOptions) (models.DirectoryObjectable, error) {
	base, ok := strings.CutSuffix(d.graphURL, "/v1.0")
	if !ok {
		return nil, &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: "restore user",
			Message: "restoring under a new name needs Graph's beta endpoint, which " + d.graphURL + " does not name"}
	}
	u, err := url.Parse(base + "/beta/directory/deletedItems/" + url.PathEscape(id) + "/restore")
	if err != nil {
		return nil, err
	}
	body := map[string]any{}
	if opts.NewUserPrincipalName != "" {
		body["newUserPrincipalName"] = opts.NewUserPrincipalName
	}
	if opts.AutoReconcileProxyConflict {
		body["autoReconcileProxyConflict"] = true
	}
	raw, _ := json.Marshal(body)
	ri := abstractions.NewRequestInformation()
	ri.Method = abstractions.POST
	ri.SetUri(*u)
	ri.Headers.TryAdd("Accept", "application/json")
	ri.SetStreamContentAndContentType(raw, "application/json")
	errMap := abstractions.ErrorMappings{"XXX": odataerrors.CreateODataErrorFromDiscriminatorValue}
	res, err := d.client.BaseRequestBuilder.RequestAdapter.Send(ctx, ri, models.CreateDirectoryObjectFromDiscriminatorValue, errMap)
	if err != nil {
		return nil, err
	}
	obj, _ := res.(models.DirectoryObjectable)
	return obj, nil
}
