package initramfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Guest describes the files of an oomlab guest image.
type Guest struct {
	Agent     string            // path of the static agent binary; becomes /init
	Stressors []string          // static programs copied to /bin/<basename>
	Files     map[string][]byte // extra files by guest path (e.g. etc/oomlab/agent.json), mode 0600
}

// AgentLink is the path the guest agent re-executes itself by.
const AgentLink = "/bin/oomlab-agent"

// Build assembles the guest archive. The layout is fixed and small: /init,
// /bin, the three device nodes the kernel and the agent need before
// devtmpfs is mounted, and empty mount points.
func Build(g Guest) (*Archive, error) {
	a := New()
	for _, d := range []string{"bin", "dev", "etc/oomlab", "proc", "sys", "tmp", "run", "root"} {
		if err := a.AddDir(d, 0o755); err != nil {
			return nil, err
		}
	}
	// console_on_rootfs() opens /dev/console before /init runs; without the
	// node the agent starts with no stdin/stdout/stderr.
	for _, d := range []struct {
		name         string
		major, minor uint32
	}{{"dev/console", 5, 1}, {"dev/null", 1, 3}, {"dev/kmsg", 1, 11}} {
		if err := a.AddCharDev(d.name, 0o600, d.major, d.minor); err != nil {
			return nil, err
		}
	}
	agent, err := os.ReadFile(g.Agent)
	if err != nil {
		return nil, fmt.Errorf("guest agent: %w (run 'make build')", err)
	}
	if err := a.AddFile("init", 0o755, agent); err != nil {
		return nil, err
	}
	// The agent starts its server and every trampoline through this link,
	// so that they show up as "oomlab-agent" (comm is the basename of the
	// executed path) in ps and in kernel lines such as a direct reaper's,
	// not as "exe" or as a second "init".
	if err := a.AddSymlink(strings.TrimPrefix(AgentLink, "/"), "/init"); err != nil {
		return nil, err
	}
	for _, s := range g.Stressors {
		data, err := os.ReadFile(s)
		if err != nil {
			return nil, fmt.Errorf("stressor: %w (run 'make build')", err)
		}
		if err := a.AddFile("bin/"+filepath.Base(s), 0o755, data); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(g.Files))
	for n := range g.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := a.AddFile(n, 0o600, g.Files[n]); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Bytes returns the archive as one byte slice.
func (a *Archive) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	_, err := a.WriteTo(&buf)
	return buf.Bytes(), err
}
