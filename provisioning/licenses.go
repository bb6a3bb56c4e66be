package provisioning

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/personio-entra/personio-entra/rules"
)

// LicenseRef is a licence named in the rules, resolved in the tenant.
type LicenseRef struct {
	SKU           string   // part number as written in the rules
	SKUID         string   // the tenant's skuId
	DisabledPlans []string // service plan ids to keep disabled
}

// skuCacheTTL bounds how long the resolved SKUs are used before
// subscribedSkus is read again (part numbers and plan ids do not change;
// the seat counts for the gauge do).
const skuCacheTTL = time.Hour

// licenseCache holds the resolved licences of the rules.
type licenseCache struct {
	mu   sync.Mutex
	refs []LicenseRef
	errs []error
	at   time.Time
}

// licenseDirectory returns the Directory's licence operations, if it has
// them.
func (e *Engine) licenseDirectory() (Licenses, bool) {
	l, ok := unwrapDirectory(e.cfg.Directory).(Licenses)
	return l, ok
}

// unwrapDirectory returns the Directory the engine was configured with
// (the engine wraps it for its group cache).
func unwrapDirectory(d Directory) Directory {
	if g, ok := d.(groupCacheDirectory); ok {
		return g.Directory
	}
	return d
}

// licenseOptions puts the rules' licences, resolved to skuIds, into opt
// and returns what could not be resolved (an unknown part number or plan,
// a failed read): those licences are left alone, and the problem goes into
// the plan's notes.
func (e *Engine) licenseOptions(ctx context.Context, opt *PlanOptions) []error {
	refs, errs := e.managedLicenses(ctx)
	opt.Licenses = refs
	return errs
}

// managedLicenses resolves the rules' licences through subscribedSkus,
// cached for skuCacheTTL; a failed read is retried on the next call.
func (e *Engine) managedLicenses(ctx context.Context) ([]LicenseRef, []error) {
	want := e.cfg.Lifecycle.Licenses
	if len(want) == 0 {
		return nil, nil
	}
	c := &e.lifecycle.licenses
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < skuCacheTTL {
		return c.refs, c.errs
	}
	ld, ok := e.licenseDirectory()
	if !ok {
		return nil, []error{errors.New("licences: the directory cannot assign licences; the rules' licenses are not applied")}
	}
	skus, err := ld.SubscribedSkus(ctx)
	if err != nil {
		return nil, []error{fmt.Errorf("licences: read the tenant's subscriptions: %w", err)}
	}
	refs, errs := resolveLicenses(want, skus)
	for _, s := range skus {
		for _, w := range want {
			if strings.EqualFold(w.SKU, s.PartNumber) {
				licenseSeatsAvailable.WithLabelValues(s.PartNumber).Set(float64(s.Enabled - s.Consumed))
			}
		}
	}
	c.refs, c.errs, c.at = refs, errs, time.Now()
	return refs, errs
}

// resolveLicenses maps the rules' part numbers and plan names to ids.
func resolveLicenses(want []rules.LicenseRule, skus []SKU) ([]LicenseRef, []error) {
	var refs []LicenseRef
	var errs []error
	for _, w := range want {
		i := slices.IndexFunc(skus, func(s SKU) bool { return strings.EqualFold(s.PartNumber, w.SKU) })
		if i < 0 {
			errs = append(errs, fmt.Errorf("licence %s: the tenant has no subscription with this SKU part number; it is not assigned or removed (see `personio-entra check`)", w.SKU))
			continue
		}
		ref := LicenseRef{SKU: w.SKU, SKUID: skus[i].ID}
		bad := false
		for _, name := range w.DisabledPlans {
			j := slices.IndexFunc(skus[i].Plans, func(p ServicePlan) bool { return strings.EqualFold(p.Name, name) })
			if j < 0 {
				errs = append(errs, fmt.Errorf("licence %s has no service plan %s; it is not assigned or removed (see `personio-entra check`)", w.SKU, name))
				bad = true
				break
			}
			ref.DisabledPlans = append(ref.DisabledPlans, skus[i].Plans[j].ID)
		}
		if !bad {
			refs = append(refs, ref)
		}
	}
	return refs, errs
}

// planLicenses adds the licence changes: a managed licence the person
// should hold and lacks is assigned, one they hold and should not is
// removed, and one whose disabled plans differ from the rules' is
// corrected. Only the licences in opt.Licenses are ever touched. A leaver
// within remove_after_days keeps what they hold (d.KeepLicenses).
//
// Graph refuses a licence for a user without a usageLocation: when the
// account has none, the rules' value is written first (in the same
// update, whatever its policy, because filling an empty value overrides
// no edit made in Entra); without one, the licence waits with a note.
func planLicenses(p *Plan, d rules.Desired, u *User, opt PlanOptions) {
	if len(opt.Licenses) == 0 || d.Licenses == nil || d.KeepLicenses {
		return
	}
	var adds, removes []Change
	for _, ref := range opt.Licenses {
		want := slices.ContainsFunc(d.Licenses, func(s string) bool { return strings.EqualFold(s, ref.SKU) })
		i := slices.IndexFunc(u.Licenses, func(l LicenseAssignment) bool { return strings.EqualFold(l.SKUID, ref.SKUID) })
		switch {
		case want && i < 0:
			adds = append(adds, Change{Kind: AssignLicense, SKU: ref.SKU, SKUID: ref.SKUID, DisabledPlans: ref.DisabledPlans})
		case want && !samePlans(u.Licenses[i].DisabledPlans, ref.DisabledPlans):
			kind := AssignLicense // only enables plans
			for _, id := range ref.DisabledPlans {
				if !slices.ContainsFunc(u.Licenses[i].DisabledPlans, func(x string) bool { return strings.EqualFold(x, id) }) {
					kind = DisableLicensePlans // takes a service away
				}
			}
			c := Change{Kind: kind, SKU: ref.SKU, SKUID: ref.SKUID, DisabledPlans: ref.DisabledPlans}
			if kind == DisableLicensePlans {
				removes = append(removes, c)
			} else {
				adds = append(adds, c)
			}
		case !want && i >= 0:
			removes = append(removes, Change{Kind: RemoveLicense, SKU: ref.SKU, SKUID: ref.SKUID})
		}
	}
	if len(adds) > 0 && u.Attributes["usageLocation"] == "" {
		loc := d.Attributes["usageLocation"]
		if loc.Value == "" || loc.Policy == rules.Never {
			for _, c := range adds {
				p.Notes = append(p.Notes, fmt.Sprintf("licence %s not assigned: the account has no usageLocation and the rules give none for this person (Graph refuses a licence without one)", c.SKU))
			}
			adds = nil
		} else {
			setUsageLocation(p, loc.Value)
		}
	}
	// Additions first: a mover gains the new licence before losing the old.
	p.Changes = append(p.Changes, adds...)
	p.Changes = append(p.Changes, removes...)
}

// setUsageLocation writes usageLocation in the plan's attribute update,
// ahead of the licence changes.
func setUsageLocation(p *Plan, loc string) {
	for i, c := range p.Changes {
		if c.Kind == UpdateUser {
			if _, ok := c.Properties["usageLocation"]; !ok {
				p.Changes[i].Properties["usageLocation"] = ptr(loc)
				if p.Changes[i].Previous == nil {
					p.Changes[i].Previous = map[string]string{}
				}
				p.Changes[i].Previous["usageLocation"] = ""
			}
			return
		}
	}
	c := Change{Kind: UpdateUser, Properties: map[string]*string{"usageLocation": ptr(loc)}, Previous: map[string]string{"usageLocation": ""}}
	p.Changes = append([]Change{c}, p.Changes...)
}

func samePlans(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y string) bool { return strings.EqualFold(x, y) }) {
			return false
		}
	}
	return true
}

// applyLicense carries out one licence change.
func (e *Engine) applyLicense(ctx context.Context, userID string, c Change) error {
	ld, ok := e.licenseDirectory()
	if !ok {
		return &DirectoryError{Kind: KindRejected, Op: string(c.Kind), Message: "the directory cannot assign licences"}
	}
	var err error
	if c.Kind == RemoveLicense {
		err = ld.AssignLicense(ctx, userID, nil, []string{c.SKUID})
	} else {
		err = ld.AssignLicense(ctx, userID, []LicenseAssignment{{SKUID: c.SKUID, DisabledPlans: c.DisabledPlans}}, nil)
	}
	if err == nil {
		return nil
	}
	reason := "other"
	switch {
	case errors.Is(err, ErrNoLicenseSeats):
		reason = "no_seats"
		err = fmt.Errorf("%w; buy more seats of %s or free some: the assignment is retried, and the complete sync picks it up again", err, c.SKU)
		e.forgetLicenses() // re-read the seat counts for the gauge
	case errors.Is(err, ErrNoUsageLocation):
		reason = "no_usage_location"
	}
	licenseFailures.WithLabelValues(reason).Inc()
	return err
}

// forgetLicenses makes the next plan read subscribedSkus again.
func (e *Engine) forgetLicenses() {
	c := &e.lifecycle.licenses
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
}

// lifecycleString renders the changes of this file, restore.go and rename.go.
func lifecycleString(c Change) string {
	switch c.Kind {
	case AssignLicense:
		s := "assign licence " + c.SKU
		if len(c.DisabledPlans) > 0 {
			s += fmt.Sprintf(" (%d plans disabled)", len(c.DisabledPlans))
		}
		return s
	case RemoveLicense:
		return "remove licence " + c.SKU
	case DisableLicensePlans:
		return fmt.Sprintf("disable %d plans of licence %s", len(c.DisabledPlans), c.SKU)
	case RestoreUser:
		s := "restore the deleted account"
		if prev, now := c.Previous["userPrincipalName"], deref(c.Properties["userPrincipalName"]); prev != "" && now != "" && !strings.EqualFold(prev, now) {
			s += " as " + now + " (" + prev + " is taken)"
		}
		return s
	case RenameUser:
		return fmt.Sprintf("rename %s → %s", c.Previous["userPrincipalName"], deref(c.Properties["userPrincipalName"]))
	}
	return strings.ReplaceAll(string(c.Kind), "_", " ")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
