//go:build tools

// Package tools pins the Argo CD multi-call command this module builds (one binary;
// the role comes from argv[0]: argocd-application-controller, argocd-repo-server, ...).
package tools

import (
	_ "github.com/argoproj/argo-cd/v3/cmd"
)
