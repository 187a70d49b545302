// Command oomlab builds baseline and patched kernels, boots them under QEMU,
// runs OOM scenarios and reports what the kernel did.
//
// This package is the CLI only: it turns flags into calls into
// harness/internal/... and maps errors to exit codes (0 every expectation
// held, 1 an expectation failed, 2 usage or infrastructure error).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"oomlab/harness/internal/vm"
)

// version is set by the Makefile (-ldflags -X main.version=...).
var version = "dev"

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// failed is returned when the run worked but an expectation did not hold.
var errExpectation = errors.New("expectations failed")

func main() {
	os.Exit(realMain())
}

func realMain() (code int) {
	// No QEMU outlives oomlab: on panic, on SIGINT/SIGTERM (via ctx) and on
	// every normal return. SIGKILL is covered by PDEATHSIG in package vm.
	defer func() {
		if p := recover(); p != nil {
			vm.KillAll()
			fmt.Fprintf(os.Stderr, "oomlab: internal error: %v\n", p)
			code = 2
		}
	}()
	defer vm.KillAll()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()

	root := newRoot()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if errors.Is(err, errExpectation) {
		return 1
	}
	var ee *exitError
	if errors.As(err, &ee) {
		fmt.Fprintf(os.Stderr, "oomlab: %v\n", ee.err)
		return ee.code
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "oomlab: interrupted; partial results were kept")
		return 130
	}
	fmt.Fprintf(os.Stderr, "oomlab: %v\n", err)
	return 2
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "oomlab",
		Short:         "OOM killer / OOM reaper lab: build kernels, boot guests, provoke OOM, report",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.AddCommand(newBuildCmd(), newRunCmd(), newScanCmd(), newListCmd(), newValidateCmd(), newReportCmd(), newCompareCmd(), newMergeCmd(), newCacheCmd())
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{2, fmt.Errorf("%s: %v (see 'oomlab %s --help')", c.Name(), err, c.Name())}
	})
	return root
}
