package personio

import (
	"context"

	"github.com/personio-entra/personio-entra/provisioning/model"
)

// EachEmployeePage is ListEmployees handing each page (up to 100 people) to
// yield as it arrives, so that a complete sync plans a page and lets it go
// instead of holding the whole company (it implements
// provisioning.PagedSource). An
// error from yield stops the read and is returned as it is.
func (c *Client) EachEmployeePage(ctx context.Context, yield func([]model.Employee) error) error {
	return c.listV1Pages(ctx, "v1_list_employees", nil, yield)
}
