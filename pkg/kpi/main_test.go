package kpi_test

import (
	"os"
	"testing"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
)

// TestMain lets the test binary run full builds in a child process, as the plugin does
// (kpi.BuildProcessMain): the tests check the path users run. It also runs
// BenchmarkVisible's receiver in a child process.
func TestMain(m *testing.M) {
	kpi.BuildProcessMain()
	benchReceiverMain() // BenchmarkVisible's receiver, in a process of its own
	os.Exit(m.Run())
}
