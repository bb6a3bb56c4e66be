package personio_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/personio-entra/personio-entra/provisioning/personio"
	"github.com/personio-entra/personio-entra/provisioning/personio/personiotest"
)

// ConfirmDeleted agrees with a v1 404 only when v2 GET /v2/persons/{id}
// does not find the person either.
func TestConfirmDeleted(t *testing.T) {
	sim, c := setup(t, personiotest.Options{}, personio.Config{})
	ctx := context.Background()

	sim.SetV1EmployeeNotFound("1001")
	if _, err := c.GetEmployee(ctx, "1001"); !errors.Is(err, personio.ErrNotFound) {
		t.Fatalf("with the fault the v1 read must say not found, got %v", err)
	}
	gone, err := c.ConfirmDeleted(ctx, "1001")
	if err != nil || gone {
		t.Errorf("person 1001 exists in v2: ConfirmDeleted = %t, %v; want false, nil", gone, err)
	}

	gone, err = c.ConfirmDeleted(ctx, "999999")
	if err != nil || !gone {
		t.Errorf("unknown person: ConfirmDeleted = %t, %v; want true, nil", gone, err)
	}

	sim.InjectRateLimit(100)
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if gone, err := c.ConfirmDeleted(cctx, "999999"); err == nil || gone {
		t.Errorf("a failing v2 read confirms nothing: got %t, %v", gone, err)
	}
	sim.InjectRateLimit(0)

	if _, err := c.ConfirmDeleted(ctx, "../1001"); err == nil {
		t.Error("invalid id accepted")
	}
}
