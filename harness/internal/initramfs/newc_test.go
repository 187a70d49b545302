package initramfs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"

	"oomlab/harness/internal/protocol"
)

func sample(t *testing.T) *Archive {
	t.Helper()
	a := New()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.AddFile("init", 0o755, []byte("#!/bin/true\n")))
	must(a.AddFile("etc/oomlab/agent.json", 0o600, []byte(`{"a":1}`)))
	must(a.AddSymlink("bin/sh", "busybox"))
	must(a.AddCharDev("dev/console", 0o600, 5, 1))
	must(a.AddFile("odd", 0o644, []byte("12345"))) // length not a multiple of 4
	return a
}

// TestRoundTrip reads the archive back with an independent reader and checks
// names, order (parents first), types, permissions and contents.
func TestRoundTrip(t *testing.T) {
	data, err := sample(t).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	r := cpio.NewReader(bytes.NewReader(data))
	got := map[string]string{}
	var order []string
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r)
		got[h.Name] = strings.TrimSpace(h.Mode.String() + " " + h.Linkname + " " + string(body))
		order = append(order, h.Name)
	}
	want := map[string]string{
		"bin":                   "040755",
		"bin/sh":                "0120777 busybox",
		"dev":                   "040755",
		"dev/console":           "020600",
		"etc":                   "040755",
		"etc/oomlab":            "040755",
		"etc/oomlab/agent.json": `0100600  {"a":1}`,
		"init":                  "0100755  #!/bin/true",
		"odd":                   "0100644  12345",
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: got %q, want %q", n, got[n], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d entries %v, want %d", len(got), order, len(want))
	}
	seen := map[string]bool{}
	for _, n := range order {
		if d := filepath.Dir(n); d != "." && !seen[d] {
			t.Errorf("%s comes before its parent %s", n, d)
		}
		seen[n] = true
	}
	if len(data)%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", len(data))
	}
}

// TestDeviceNumbers checks rdevmajor/rdevminor with GNU cpio, the reference
// reader, because that is the field the library writer gets wrong.
func TestDeviceNumbers(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("GNU cpio not installed (make deps installs it)")
	}
	data, err := sample(t).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -itv: %v\n%s", err, out)
	}
	var line string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(l, "dev/console") {
			line = l
		}
	}
	if !strings.HasPrefix(line, "crw-------") || !strings.Contains(line, "5,") || !strings.Contains(line, " 1 ") {
		t.Fatalf("dev/console listed as %q, want a 5,1 char device", line)
	}
}

func TestAddErrors(t *testing.T) {
	a := New()
	if err := a.AddFile("x", 0o644, nil); err != nil {
		t.Fatal(err)
	}
	if err := a.AddFile("x/y", 0o644, nil); err == nil {
		t.Error("adding a file below a regular file succeeded")
	}
	if err := a.Add(Entry{Name: "/", Type: TypeDir}); err == nil {
		t.Error("adding the root succeeded")
	}
	if err := a.Add(Entry{Name: "l", Type: TypeSymlink}); err == nil {
		t.Error("symlink without target succeeded")
	}
}

func TestBuildDeterministic(t *testing.T) {
	dir := t.TempDir()
	agent := filepath.Join(dir, "agent")
	hog := filepath.Join(dir, "memhog")
	os.WriteFile(agent, []byte("AGENT"), 0o755)
	os.WriteFile(hog, []byte("HOG"), 0o755)
	g := Guest{Agent: agent, Stressors: []string{hog}, Config: protocol.Config{IPCIDR: "10.0.2.15/24"}}
	a1, err := Build(g)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := a1.Bytes()
	a2, _ := Build(g)
	b2, _ := a2.Bytes()
	if !bytes.Equal(b1, b2) {
		t.Error("same inputs gave different archives")
	}
	if _, err := Build(Guest{Agent: filepath.Join(dir, "missing")}); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("missing agent: got %v, want an error pointing at 'make build'", err)
	}
	if _, err := Build(Guest{Agent: agent, Stressors: []string{filepath.Join(dir, "missing")}}); err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("missing stressor: got %v, want an error pointing at 'make build'", err)
	}
}
