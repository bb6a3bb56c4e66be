package console

import "github.com/go-chi/chi/v5"

func (c *Console) rulesRoutes(r chi.Router) {}
