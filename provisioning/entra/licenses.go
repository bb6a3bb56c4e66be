package entra

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"

	"github.com/personio-entra/personio-entra/provisioning"
)

var _ provisioning.Licenses = (*Directory)(nil)

// SubscribedSkus reads the tenant's subscriptions (GET /subscribedSkus,
// https://learn.microsoft.com/en-us/graph/api/subscribedsku-list; needs
// LicenseAssignment.Read.All or Organization.Read.All).
func (d *Directory) SubscribedSkus(ctx context.Context) ([]provisioning.SKU, error) {
	ctx = withOp(ctx, "subscribed_skus")
	resp, err := d.client.SubscribedSkus().Get(ctx, nil)
	var out []provisioning.SKU
	for {
		if err != nil {
			return nil, d.fail("list subscribed SKUs", err)
		}
		for _, s := range resp.GetValue() {
			k := provisioning.SKU{PartNumber: deref(s.GetSkuPartNumber()), AppliesTo: deref(s.GetAppliesTo())}
			if id := s.GetSkuId(); id != nil {
				k.ID = id.String()
			}
			if c := s.GetConsumedUnits(); c != nil {
				k.Consumed = int(*c)
			}
			if p := s.GetPrepaidUnits(); p != nil && p.GetEnabled() != nil {
				k.Enabled = int(*p.GetEnabled())
			}
			for _, p := range s.GetServicePlans() {
				sp := provisioning.ServicePlan{Name: deref(p.GetServicePlanName())}
				if id := p.GetServicePlanId(); id != nil {
					sp.ID = id.String()
				}
				k.Plans = append(k.Plans, sp)
			}
			out = append(out, k)
		}
		next := resp.GetOdataNextLink()
		if next == nil || *next == "" {
			return out, nil
		}
		resp, err = d.client.SubscribedSkus().WithUrl(*next).Get(ctx, nil)
	}
}

// AssignLicense adds and removes licences in one POST
// /users/{id}/assignLicense (both parameters are always sent: Graph
// requires them, https://learn.microsoft.com/en-us/graph/api/user-assignlicense).
// Graph documents that a licence needs a usageLocation and a free seat but
// not the answers; they come as 400 Request_BadRequest, told apart by
// their message (docs/graph-behaviour.md#licences), and are returned as
// KindTransient matching provisioning.ErrNoUsageLocation and
// provisioning.ErrNoLicenseSeats: both can succeed later.
func (d *Directory) AssignLicense(ctx context.Context, userID string, add []provisioning.LicenseAssignment, remove []string) error {
	const op = "assign license"
	body := users.NewItemAssignLicensePostRequestBody()
	adds := make([]models.AssignedLicenseable, 0, len(add))
	for _, a := range add {
		id, err := uuid.Parse(a.SKUID)
		if err != nil {
			return &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op, Message: fmt.Sprintf("skuId %q is not a GUID", a.SKUID)}
		}
		al := models.NewAssignedLicense()
		al.SetSkuId(&id)
		plans := make([]uuid.UUID, 0, len(a.DisabledPlans))
		for _, p := range a.DisabledPlans {
			pid, err := uuid.Parse(p)
			if err != nil {
				return &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op, Message: fmt.Sprintf("service plan id %q is not a GUID", p)}
			}
			plans = append(plans, pid)
		}
		al.SetDisabledPlans(plans)
		adds = append(adds, al)
	}
	removes := make([]uuid.UUID, 0, len(remove))
	for _, r := range remove {
		id, err := uuid.Parse(r)
		if err != nil {
			return &provisioning.DirectoryError{Kind: provisioning.KindRejected, Op: op, Message: fmt.Sprintf("skuId %q is not a GUID", r)}
		}
		removes = append(removes, id)
	}
	body.SetAddLicenses(adds)
	body.SetRemoveLicenses(removes)
	ctx = withOp(ctx, "assign_license")
	return d.replicationRetry(ctx, []string{userID}, func() error {
		if _, err := d.client.Users().ByUserId(userID).AssignLicense().Post(ctx, body, nil); err != nil {
			return licenseError(d.fail(op, err))
		}
		return nil
	})
}

// licenseError marks the refusals that can succeed later.
func licenseError(err error) error {
	de, ok := err.(*provisioning.DirectoryError)
	if !ok || de.Kind != provisioning.KindRejected {
		return err
	}
	msg := strings.ToLower(de.Message)
	switch {
	case strings.Contains(msg, "does not have any available licenses"):
		de.Kind, de.Err = provisioning.KindTransient, fmt.Errorf("%w: %w", provisioning.ErrNoLicenseSeats, de.Err)
	case strings.Contains(msg, "usage location"):
		de.Kind, de.Err = provisioning.KindTransient, fmt.Errorf("%w: %w", provisioning.ErrNoUsageLocation, de.Err)
	}
	return de
}

// assignedLicenses maps a user's assignedLicenses.
func assignedLicenses(ls []models.AssignedLicenseable) []provisioning.LicenseAssignment {
	if len(ls) == 0 {
		return nil
	}
	out := make([]provisioning.LicenseAssignment, 0, len(ls))
	for _, l := range ls {
		a := provisioning.LicenseAssignment{}
		if id := l.GetSkuId(); id != nil {
			a.SKUID = id.String()
		}
		for _, p := range l.GetDisabledPlans() {
			a.DisabledPlans = append(a.DisabledPlans, p.String())
		}
		out = append(out, a)
	}
	return out
}
