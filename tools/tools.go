//go:build tools

// Package tools pins module dependencies that packages under construction use.
package tools

import (
	_ "cel.dev/cel-go/cel"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "go.yaml.in/yaml/v3"
)
