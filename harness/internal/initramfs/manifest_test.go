package initramfs

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cavaliergopher/cpio"

	"oomlab/harness/internal/protocol"
)

// TestDefaultManifest checks the shipped images/guest.yaml: it loads, every
// entry is valid, and the agent finds itself where protocol says.
func TestDefaultManifest(t *testing.T) {
	m, err := DefaultManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Init.Path != "/init" {
		t.Errorf("init is %s; the kernel runs /init", m.Init.Path)
	}
	var agentLink *Link
	for i, l := range m.Links {
		if l.Path == protocol.AgentPath {
			agentLink = &m.Links[i]
		}
	}
	if agentLink == nil || agentLink.Target != m.Init.Path {
		t.Errorf("no link %s -> %s in the manifest: %+v", protocol.AgentPath, m.Init.Path, m.Links)
	}
	for _, d := range []string{"/dev", "/proc", "/sys", "/tmp", "/run", filepath.Dir(protocol.ConfigPath)} {
		if !slices.Contains(m.Dirs, d) {
			t.Errorf("dirs lacks %s, which the agent needs at boot", d)
		}
	}
	console := false
	for _, d := range m.Devices {
		if d.Path == "/dev/console" && d.Type == "char" && d.Major == 5 && d.Minor == 1 {
			console = true
		}
	}
	if !console {
		t.Error("no /dev/console 5:1: the agent would start without stdio")
	}
}

// TestManifestInArchive reads a built image back with an independent reader
// and finds every manifest entry, the binaries and the configuration.
func TestManifestInArchive(t *testing.T) {
	m, err := DefaultManifest()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	agent, hog := filepath.Join(dir, "agent"), filepath.Join(dir, "memhog")
	os.WriteFile(agent, []byte("AGENT"), 0o755)
	os.WriteFile(hog, []byte("HOG"), 0o755)
	initrd := filepath.Join(dir, "out", "initrd.cpio")
	if err := WriteFile(initrd, Guest{Agent: agent, Stressors: []string{hog}, Config: protocol.Config{IPCIDR: "10.0.2.15/24"}}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(initrd)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		h    cpio.Header
		body string
	}
	got := map[string]entry{}
	r := cpio.NewReader(bytes.NewReader(data))
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r)
		got["/"+h.Name] = entry{*h, string(body)}
	}
	for _, d := range m.Dirs {
		if e, ok := got[d]; !ok || !e.h.Mode.IsDir() {
			t.Errorf("dir %s missing", d)
		}
	}
	for _, d := range m.Devices {
		if e, ok := got[d.Path]; !ok || e.h.Mode&cpio.TypeChar == 0 || e.h.Mode.Perm() != cpio.FileMode(d.Mode) {
			t.Errorf("device %s: %+v", d.Path, got[d.Path].h)
		}
	}
	if e := got[m.Init.Path]; e.body != "AGENT" || e.h.Mode.Perm() != cpio.FileMode(m.Init.Mode) {
		t.Errorf("init %s: mode %v body %q", m.Init.Path, e.h.Mode, e.body)
	}
	if e := got[m.Stressors.Dir+"/memhog"]; e.body != "HOG" || e.h.Mode.Perm() != cpio.FileMode(m.Stressors.Mode) {
		t.Errorf("stressor: mode %v body %q", e.h.Mode, e.body)
	}
	for _, l := range m.Links {
		if e := got[l.Path]; e.h.Linkname != l.Target {
			t.Errorf("link %s -> %q, want %q", l.Path, e.h.Linkname, l.Target)
		}
	}
	var cfg protocol.Config
	e := got[protocol.ConfigPath]
	if err := json.Unmarshal([]byte(e.body), &cfg); err != nil || e.h.Mode.Perm() != 0o600 {
		t.Fatalf("config %s: mode %v: %v", protocol.ConfigPath, e.h.Mode, err)
	}
	if cfg.IPCIDR != "10.0.2.15/24" || !slices.Equal(cfg.PathDirs, []string{m.Stressors.Dir}) {
		t.Errorf("config = %+v, want the IP and PathDirs [%s]", cfg, m.Stressors.Dir)
	}
}

func TestManifestErrors(t *testing.T) {
	const ok = `dirs: [/bin, /dev]
devices:
  - {path: /dev/console, type: char, major: 5, minor: 1, mode: "0600"}
init: {path: /init, mode: "0755"}
stressors: {dir: /bin, mode: "0755"}
links:
  - {path: /bin/oomlab-agent, target: /init}
`
	if _, err := ParseManifest("m.yaml", []byte(ok)); err != nil {
		t.Fatalf("good manifest: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"relative dir", "dirs: [/bin, /dev]", "dirs: [bin, /dev]", `dirs "bin": want an absolute, clean path`},
		{"dir twice", "dirs: [/bin, /dev]", "dirs: [/bin, /bin]", `dirs "/bin": already used by dirs`},
		{"device type", "type: char", "type: pipe", `type "pipe": want char or block`},
		{"device major", "major: 5", "major: 0", "major 0 is not a device"},
		{"device mode", `mode: "0600"`, `mode: "rw"`, `mode "rw": want octal`},
		{"device no mode", `, mode: "0600"}`, `}`, "mode missing"},
		{"init not executable", `init: {path: /init, mode: "0755"}`, `init: {path: /init, mode: "0644"}`, "not executable"},
		{"init over a device", "init: {path: /init", "init: {path: /dev/console", "already used by devices[0]"},
		{"stressor dir", "stressors: {dir: /bin", "stressors: {dir: bin/", "stressors.dir"},
		{"agent link target", "target: /init}", "target: /bin/true}", `points to "/bin/true", want the agent at /init`},
		{"no agent link", "path: /bin/oomlab-agent", "path: /bin/agent", "no link from /bin/oomlab-agent"},
		{"unknown field", "links:", "linkz:", "unknown field"},
	} {
		src := strings.Replace(ok, tc.from, tc.to, 1)
		if src == ok {
			t.Fatalf("%s: %q not in the manifest", tc.name, tc.from)
		}
		_, err := ParseManifest("m.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "m.yaml") {
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}
