package rules

import (
	"github.com/personio-entra/personio-entra/provisioning/model"
	"os"
	"regexp"
	"testing"
	"time"
)

// The rules example in the top-level README must load and evaluate.
func TestREADMEExampleLoads(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(b, -1)
	if len(blocks) == 0 {
		t.Fatal("README has no yaml block")
	}
	for i, blk := range blocks {
		r, err := LoadBytes("README.md block", blk[1])
		if err != nil {
			t.Fatalf("README yaml block %d: %v", i+1, err)
		}
		d, err := r.Evaluate(model.Employee{PersonID: "7", FirstName: "Jürgen", LastName: "Groß", Status: "ACTIVE",
			Gender: "FEMALE", Department: model.Ref{Name: "Finance"}, LegalEntity: model.Ref{Name: "Example GmbH"},
			StartDate: model.Date{Year: 2024, Month: 1, Day: 1}}, time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
		if err != nil {
			t.Fatalf("README yaml block %d: evaluate: %v", i+1, err)
		}
		if len(d.UPNCandidates) == 0 || d.UPNCandidates[0] != "juergen.gross@example.com" || len(d.Groups) != 2 {
			t.Errorf("README yaml block %d: UPN candidates %v, groups %v", i+1, d.UPNCandidates, d.Groups)
		}
	}
}
