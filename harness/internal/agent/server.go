package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"oomlab/harness/internal/protocol"
)

// Server is the agent's SSH server. Create it with NewServer, optionally
// adjust the exported fields, then call Serve.
type Server struct {
	// SelfExe is the agent binary used as the spawn trampoline for every
	// external command. Default "/proc/self/exe" (i.e. /init in the guest);
	// tests point it at a freshly built agent binary.
	SelfExe string
	// Reboot performs the reboot(2) call for the `poweroff` and `reboot`
	// builtins (unix.LINUX_REBOOT_CMD_*). nil disables both builtins so a
	// server running on a developer machine can never power it off.
	Reboot func(cmd int) error
	// Logf receives short diagnostics (failed handshakes, ...). nil = silent.
	Logf func(format string, args ...any)
	// HandshakeTimeout bounds the SSH handshake of an accepted connection.
	HandshakeTimeout time.Duration
	// OutputGrace is how long output pipes are drained after the command
	// exited while nothing arrives on them (a background grandchild may
	// keep them open forever).
	OutputGrace time.Duration

	cfg       protocol.Config
	sshConfig *ssh.ServerConfig
	env       []string
}

// NewServer validates cfg (host key, authorized keys) and returns a server.
func NewServer(cfg protocol.Config) (*Server, error) {
	cfg = cfg.WithDefaults()
	signer, err := ssh.ParsePrivateKey([]byte(cfg.HostKeyPEM))
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	authorized, err := parseAuthorizedKeys(cfg.AuthorizedKeys)
	if err != nil {
		return nil, err
	}
	s := &Server{
		SelfExe:          "/proc/self/exe",
		HandshakeTimeout: 30 * time.Second,
		OutputGrace:      500 * time.Millisecond,
		cfg:              cfg,
	}
	s.sshConfig = &ssh.ServerConfig{
		// Public-key auth only, any user name.
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			m := key.Marshal()
			for _, k := range authorized {
				if bytes.Equal(m, k) {
					return &ssh.Permissions{}, nil
				}
			}
			return nil, errors.New("key not authorized")
		},
	}
	s.sshConfig.AddHostKey(signer)
	s.env = commandEnv(os.Environ(), cfg.PathDirs)
	return s, nil
}

func parseAuthorizedKeys(s string) ([][]byte, error) {
	var keys [][]byte
	rest := []byte(s)
	for len(bytes.TrimSpace(rest)) > 0 {
		key, _, _, r, err := ssh.ParseAuthorizedKey(rest)
		if err != nil {
			return nil, fmt.Errorf("authorized keys: %w", err)
		}
		keys = append(keys, key.Marshal())
		rest = r
	}
	if len(keys) == 0 {
		return nil, errors.New("authorized keys: none configured")
	}
	return keys, nil
}

// commandEnv is the environment of spawned commands: the agent's own, with
// PATH set to the configured lookup directories.
func commandEnv(base []string, dirs []string) []string {
	env := make([]string, 0, len(base)+1)
	for _, e := range base {
		if !strings.HasPrefix(e, "PATH=") {
			env = append(env, e)
		}
	}
	return append(env, "PATH="+strings.Join(dirs, ":"))
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// Serve accepts connections on l until ctx is cancelled. On return l is
// closed, every connection is closed and every running command has been
// killed and reaped. It returns nil after cancellation.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	var wg sync.WaitGroup
	defer wg.Wait()
	backoff := 10 * time.Millisecond
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// EMFILE/ENOMEM under memory pressure: keep serving.
			s.logf("accept: %v", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		wg.Go(func() { s.handleConn(ctx, conn) })
	}
}

func (s *Server) handleConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	if tc, ok := conn.(*net.TCPConn); ok {
		// Detect a vanished host even when no session traffic flows.
		_ = tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 4})
	}
	_ = conn.SetDeadline(time.Now().Add(s.HandshakeTimeout))
	sconn, chans, reqs, err := ssh.NewServerConn(conn, s.sshConfig)
	if err != nil {
		s.logf("handshake from %s: %v", conn.RemoteAddr(), err)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { sconn.Close() })
	defer stop()

	// Global requests: answer keepalives positively, refuse the rest
	// (tcpip-forward etc.). Reply is a no-op when no reply is wanted.
	go func() {
		for r := range reqs {
			_ = r.Reply(r.Type == "keepalive@openssh.com", nil)
		}
	}()

	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "only session channels are supported")
			continue
		}
		wg.Go(func() { s.handleSession(ctx, nc) })
	}
	// chans is closed once the connection is gone; sessions notice through
	// their own request channels.
	wg.Wait()
}
