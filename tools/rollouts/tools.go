//go:build tools

// Package tools pins the Argo Rollouts controller this module builds.
package tools

import (
	_ "github.com/argoproj/argo-rollouts/cmd/rollouts-controller"
)
