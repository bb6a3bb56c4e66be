package rules

import (
	"fmt"
	"github.com/personio-entra/personio-entra/provisioning/model"
	"testing"
	"time"
)

// tenThousand spreads the sample company over 10,000 people with distinct
// ids and names, so that every phase and mapping path is exercised.
func tenThousand(b *testing.B) []model.Employee {
	sample, _ := loadSample(b)
	out := make([]model.Employee, 10_000)
	for i := range out {
		e := sample[i%len(sample)]
		e.PersonID = fmt.Sprint(100_000 + i)
		e.LastName = fmt.Sprintf("%s%d", e.LastName, i/len(sample))
		out[i] = e
	}
	return out
}

// BenchmarkEvaluate: one op is the desired state of one employee with the
// example rules (20 attributes, 8 group rules, scope, UPN candidates).
func BenchmarkEvaluate(b *testing.B) {
	r := loadExample(b)
	people := tenThousand(b)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, r.TimeZone())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := r.Evaluate(people[i%len(people)], now); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkEvaluate10k: one op is the desired state of all 10,000.
func BenchmarkEvaluate10k(b *testing.B) {
	r := loadExample(b)
	people := tenThousand(b)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, r.TimeZone())
	b.ReportAllocs()
	for b.Loop() {
		for _, e := range people {
			if _, err := r.Evaluate(e, now); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkLoad: loading and type-checking the example rules.
func BenchmarkLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Load("../deploy/rules.example.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}
