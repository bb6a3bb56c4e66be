// Package deploy holds the deployment files (container image, Compose,
// Kubernetes, dashboards, alerts, example rules) and the tests that check
// them. It embeds the example rules so that `personio-entra demo` runs from
// a checkout or a binary alike.
package deploy

import _ "embed"

// RulesExample is deploy/rules.example.yaml.
//
//go:embed rules.example.yaml
var RulesExample []byte
