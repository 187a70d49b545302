package guest

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// hungServer is an SSH server that completes the handshake and then acts
// like a guest whose CPUs are all taken: with mode "open" it never answers
// a channel open, with "exec" it accepts the session and never answers the
// exec request, with "run" it starts the command and never ends it nor
// answers a signal or a close.
func hungServer(t *testing.T, keys *Keys, mode string) string {
	t.Helper()
	signer, err := ssh.ParsePrivateKey([]byte(keys.HostKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(ssh.ConnMetadata, ssh.PublicKey) (*ssh.Permissions, error) { return nil, nil }}
	cfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, chans, reqs, err := ssh.NewServerConn(c, cfg)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for nc := range chans {
					if mode == "open" {
						continue // never answered
					}
					ch, creqs, err := nc.Accept()
					if err != nil {
						return
					}
					go func() {
						for r := range creqs {
							if mode == "run" && r.Type == "exec" && r.WantReply {
								r.Reply(true, nil)
							}
							// "exec": no reply ever; signals and closes are ignored
						}
					}()
					_ = ch
				}
				<-stop
			}()
		}
	}()
	return l.Addr().String()
}

// TestHungGuestCallsEndWithContext: whatever the agent does not answer,
// every call returns within its context (plus the end grace of a started
// command), and the client can still be closed.
func TestHungGuestCallsEndWithContext(t *testing.T) {
	for _, mode := range []string{"open", "exec", "run"} {
		t.Run(mode, func(t *testing.T) {
			keys, _ := NewKeys()
			addr := hungServer(t, keys, mode)
			c, err := Dial(ctxT(t, 5*time.Second), addr, keys, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			calls := map[string]func(context.Context) error{
				"Output": func(ctx context.Context) error { _, err := c.Output(ctx, "true"); return err },
				"Ping":   func(ctx context.Context) error { return c.Ping(ctx, 300*time.Millisecond) },
				"Kmsg":   func(ctx context.Context) error { return c.Kmsg(ctx, "x") },
				"Census": func(ctx context.Context) error { _, err := c.Census(ctx); return err },
				"Metrics": func(ctx context.Context) error {
					c.Metrics(ctx, 100*time.Millisecond, func(Sample) {})
					return ctx.Err()
				},
			}
			for name, call := range calls {
				ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
				start := time.Now()
				err := call(ctx)
				cancel()
				// Bounded, not forever (the bug); the slack is for a
				// loaded machine.
				if d := time.Since(start); d > 300*time.Millisecond+2*endGrace+5*time.Second {
					t.Errorf("%s returned after %v", name, d)
				}
				if err == nil || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: error %v, want the deadline", name, err)
				}
			}
		})
	}
}
