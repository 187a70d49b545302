// Package oomlab holds the files the oomlab binary carries with it, so that
// one binary can build the default kernels and run the suite from any
// directory: the kconfig fragments, the patch series (with its BASE), the
// scenario files and the guest image manifest. Everything else lives under
// harness/.
package oomlab

import "embed"

// Assets is rooted at the repository top: kconfig/*.config, patches/*,
// scenarios/*.yaml, scenarios/sets.yaml (the named sets, in order) and
// images/*.yaml (the guest image manifest).
//
//go:embed kconfig/*.config patches scenarios/*.yaml scenarios/sets.yaml images/*.yaml
var Assets embed.FS
