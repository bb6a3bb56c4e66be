package provisioning_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/provisioningtest"
)

// pagedSource hands Personio out two people a page and refuses the
// complete list, so the sync must plan page by page.
type pagedSource struct {
	*provisioningtest.Source
	pages int
}

func (s *pagedSource) ListEmployees(context.Context) ([]model.Employee, error) {
	return nil, errors.New("the complete list must not be read: the source pages")
}

func (s *pagedSource) EachEmployeePage(ctx context.Context, yield func([]model.Employee) error) error {
	all, err := s.Source.ListEmployees(ctx)
	if err != nil {
		return err
	}
	for page := range slices.Chunk(all, 2) {
		s.pages++
		if err := yield(page); err != nil {
			return err
		}
	}
	return nil
}

// A complete sync over a PagedSource plans each page as it comes and finds
// the same drift, leavers included.
func TestCompleteSyncPlansPersonioPageByPage(t *testing.T) {
	env := newEngineEnv(t)
	for _, p := range []model.Employee{employee("1", "Ada", "One"), employee("2", "Bea", "Two"), employee("3", "Cem", "Three"),
		employee("4", "Dan", "Four"), employee("5", "Eva", "Five")} {
		env.src.Set(p)
	}
	env.converge(t, "1", "2", "3", "4", "5")
	env.src.Set(employee("2", "Bea", "Two", func(e *model.Employee) { e.Position = "Controller" }))
	env.src.Remove("5")
	src := &pagedSource{Source: env.src}
	env.eng = env.engineWithSource(t, src)
	s := provisioning.NewSyncer(provisioning.SyncConfig{Engine: env.eng, Queue: env.q, State: env.state})
	rep, err := s.Run(context.Background(), provisioning.SyncOptions{Complete: true, WithPlans: true})
	if err != nil {
		t.Fatal(err)
	}
	var drifting []string
	for _, p := range rep.Plans {
		drifting = append(drifting, p.PersonID)
	}
	if rep.Employees != 4 || src.pages != 2 || !slices.Equal(drifting, []string{"2", "5"}) {
		t.Fatalf("employees %d in %d pages, drifting %v; want 4 in 2 pages, drifting [2 5]", rep.Employees, src.pages, drifting)
	}
}
