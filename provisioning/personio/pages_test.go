package personio_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/personio-entra/personio-entra/provisioning"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"github.com/personio-entra/personio-entra/provisioning/personio"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

var _ provisioning.PagedSource = (*personio.Client)(nil)

// EachEmployeePage hands out the complete read a page (100) at a time, the
// same people ListEmployees returns, and stops at yield's error.
func TestEachEmployeePage(t *testing.T) {
	for _, n := range []int{0, 100, 250} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			sim, c := setup(t, personiotest.Options{}, personio.Config{})
			sim.SetCompany(personiotest.GenerateCompany(n))
			var sizes []int
			ids := map[string]bool{}
			err := c.EachEmployeePage(context.Background(), func(page []model.Employee) error {
				sizes = append(sizes, len(page))
				for _, e := range page {
					ids[e.PersonID] = true
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != n {
				t.Fatalf("%d distinct people in pages %v, want %d", len(ids), sizes, n)
			}
			for _, s := range sizes {
				if s > 100 {
					t.Fatalf("a page of %d people (pages %v), want at most 100", s, sizes)
				}
			}
		})
	}
	sim, c := setup(t, personiotest.Options{}, personio.Config{})
	sim.SetCompany(personiotest.GenerateCompany(250))
	stop := errors.New("stop")
	pages := 0
	err := c.EachEmployeePage(context.Background(), func([]model.Employee) error { pages++; return stop })
	if !errors.Is(err, stop) || pages != 1 {
		t.Fatalf("yield's error: got %v after %d pages, want it after the first", err, pages)
	}
}
