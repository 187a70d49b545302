package guest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"oomlab/harness/internal/agent"
	"oomlab/harness/internal/protocol"
)

func TestMain(m *testing.M) {
	// Fallback trampoline: when no go tool is available to build the real
	// agent binary, the test binary itself serves as the agent's SelfExe.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case agent.SpawnFlag:
			agent.SpawnMain(os.Args[2:])
		case agent.BuiltinFlag:
			os.Exit(agent.BuiltinMain(os.Args[2:]))
		}
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	realBin   bool
)

// agentBinary builds the real, static oomlab-agent once per test run.
func agentBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil && os.Getenv("GOROOT") != "" {
			goTool, err = filepath.Join(os.Getenv("GOROOT"), "bin", "go"), nil
		}
		if err == nil {
			var dir string
			if dir, err = os.MkdirTemp("", "oomlab-agent-test-"); err == nil {
				binDir = dir
				out := filepath.Join(dir, "oomlab-agent")
				cmd := exec.Command(goTool, "build", "-o", out, "oomlab/harness/cmd/oomlab-agent")
				cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
				var b []byte
				if b, err = cmd.CombinedOutput(); err == nil {
					binPath, realBin = out, true
					return
				}
				t.Logf("go build oomlab-agent failed: %v\n%s", err, b)
			}
		}
		t.Logf("using the test binary as trampoline (%v)", err)
		binPath, _ = os.Executable()
	})
	if binPath == "" {
		t.Fatal("no agent binary")
	}
	return binPath
}

type testAgent struct {
	addr   string
	keys   *Keys
	srv    *agent.Server
	client *Client
}

func testConfig(t testing.TB, keys *Keys) protocol.Config {
	cfg := protocol.Config{PathDirs: []string{"/usr/local/bin", "/usr/bin", "/bin"}}
	keys.Apply(&cfg)
	return cfg
}

// serve runs a real agent server on l until the test ends.
func serve(t testing.TB, cfg protocol.Config, l net.Listener, tweak func(*agent.Server)) *agent.Server {
	t.Helper()
	srv, err := agent.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.SelfExe = agentBinary(t)
	srv.Logf = t.Logf
	if tweak != nil {
		tweak(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return srv
}

// startAgent starts an agent on 127.0.0.1:0 and dials it.
func startAgent(t testing.TB, tweak func(*agent.Server)) *testAgent {
	t.Helper()
	keys, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta := &testAgent{addr: l.Addr().String(), keys: keys}
	ta.srv = serve(t, testConfig(t, keys), l, tweak)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ta.client, err = Dial(ctx, ta.addr, keys, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ta.client.Close() })
	return ta
}
