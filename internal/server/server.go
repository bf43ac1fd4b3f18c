// Package server is the daemon's core: it accepts connections on the local
// socket, establishes each peer's identity from the kernel once per connection,
// re-checks it before every request, applies policy before touching the store,
// and executes batches against a backend. It is a value built from Options, so
// a test can run several in one process.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/The-17/keychain-auth/internal/attest"
	"github.com/The-17/keychain-auth/internal/audit"
	"github.com/The-17/keychain-auth/internal/backend"
	"github.com/The-17/keychain-auth/internal/config"
	"github.com/The-17/keychain-auth/internal/peer"
)

// Defaults from the protocol contract.
const (
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultLineTimeout    = 30 * time.Second
	DefaultMaxConnsPerUID = 256
	// DefaultDrainTimeout bounds how long a connection we are closing is
	// drained so that the client can still read our last reply.
	DefaultDrainTimeout = time.Second
	writeTimeout        = 30 * time.Second
)

// Auditor receives one record per decision. If Log fails, the request it
// describes is refused: no access goes unrecorded.
type Auditor interface {
	Log(ctx context.Context, r audit.Record) error
}

// Options configures a Server. Listener, Backend, Config and Attestor are required.
type Options struct {
	Listener net.Listener
	Backend  backend.Backend
	Config   *config.Cache
	Attestor *attest.Attestor
	// PendingFile receives a record for every unregistered caller; "" disables it.
	PendingFile string
	Audit       Auditor
	Logger      *slog.Logger
	// UID is the daemon's uid; in user mode a peer with another uid is refused.
	UID uint32
	// AnyUID admits peers of every uid (system mode); secrets are then
	// namespaced per peer uid.
	AnyUID bool
	// ExecHash is the hash of the only binary allowed to send a descriptor
	// with a request (keychain-auth exec): the daemon's own, see SelfHash.
	// Empty refuses every descriptor request.
	ExecHash string

	IdleTimeout    time.Duration
	LineTimeout    time.Duration
	MaxConnsPerUID int
	// DrainTimeout: see DefaultDrainTimeout. Shutdown does not wait for it.
	DrainTimeout time.Duration
	// ConfigPoll is how often config.json is checked for changes to record
	// while no request arrives (0: DefaultConfigPoll; negative: never).
	ConfigPoll time.Duration
	// NoPrewarm skips hashing the registered binaries' files at start.
	NoPrewarm bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// fromConn asks the kernel who the peer is (nil: peer.FromConn); tests
	// replace it to produce what only some kernels do.
	fromConn func(net.Conn) (*peer.Peer, error)
	// atStep, when set, is called at named steps of a session's checks, so
	// a test can change the peer at exactly that moment.
	atStep func(step string)
}

// Server is a running daemon core.
type Server struct {
	opts    Options
	log     *slog.Logger
	pending config.PendingLimiter
	// denials throttles connect_denied records per caller and reason (see
	// recordDenial).
	denials config.PendingLimiter

	nextConn atomic.Uint64

	mu       sync.Mutex
	conns    map[*session]struct{}
	perUID   map[uint32]int
	closing  bool
	wg       sync.WaitGroup // connections
	bgWG     sync.WaitGroup // background writes (pending queue)
	warnOnce sync.Once
	watch    configWatch
}

// New checks opts and returns a Server ready to Serve.
func New(opts Options) (*Server, error) {
	switch {
	case opts.Listener == nil:
		return nil, errors.New("server: no listener")
	case opts.Backend == nil:
		return nil, errors.New("server: no backend")
	case opts.Config == nil:
		return nil, errors.New("server: no config")
	case opts.Attestor == nil:
		return nil, errors.New("server: no attestor")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.LineTimeout <= 0 {
		opts.LineTimeout = DefaultLineTimeout
	}
	if opts.MaxConnsPerUID <= 0 {
		opts.MaxConnsPerUID = DefaultMaxConnsPerUID
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.fromConn == nil {
		opts.fromConn = peer.FromConn
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ConfigPoll == 0 {
		opts.ConfigPoll = DefaultConfigPoll
	}
	return &Server{
		opts:   opts,
		log:    opts.Logger,
		conns:  make(map[*session]struct{}),
		perUID: make(map[uint32]int),
	}, nil
}

// Serve accepts connections until ctx is cancelled, then stops accepting,
// lets in-flight requests finish, closes idle connections and returns nil.
func (s *Server) Serve(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.closing = true
		for c := range s.conns {
			c.interrupt()
		}
		s.mu.Unlock()
		s.opts.Listener.Close()
	})
	defer stop()

	// Record any change of config.json since the daemon loaded it, then
	// keep looking while idle.
	cfg, _, _ := s.loadConfig(ctx)
	if cfg != nil && !s.opts.NoPrewarm {
		s.bgWG.Add(1)
		go func() {
			defer s.bgWG.Done()
			s.prewarm(ctx, cfg)
		}()
	}
	if s.opts.ConfigPoll > 0 {
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.watchConfig(wctx, s.opts.ConfigPoll)
		}()
		defer func() { cancel(); <-done }()
	}

	var delay time.Duration
	for {
		nc, err := s.opts.Listener.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				// Out of fds or similar: back off instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; backing off", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			s.shutdownWait()
			return fmt.Errorf("accept on %s: %w", s.opts.Listener.Addr(), err)
		}
		delay = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(ctx, nc)
		}()
	}
	s.shutdownWait()
	return nil
}

func (s *Server) shutdownWait() {
	s.mu.Lock()
	s.closing = true
	for c := range s.conns {
		c.interrupt()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.bgWG.Wait()
}

// track registers a session under its uid, enforcing the per-uid cap.
// closing reports that the server is shutting down instead.
func (s *Server) track(c *session) (ok, closing bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false, true
	}
	if s.perUID[c.peerUID] >= s.opts.MaxConnsPerUID {
		return false, false
	}
	s.perUID[c.peerUID]++
	s.conns[c] = struct{}{}
	return true, false
}

func (s *Server) untrack(c *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if s.perUID[c.peerUID]--; s.perUID[c.peerUID] <= 0 {
		delete(s.perUID, c.peerUID)
	}
}

// ConnCount reports open connections (for tests and status).
func (s *Server) ConnCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// prewarm hashes the files at the registered paths once, in the background,
// so that a registered binary's first connection after a restart is answered
// from the attestor's cache instead of queueing for one of its two hashing
// slots behind whatever else is connecting (a flood of large unregistered
// images could otherwise keep it waiting). The cache is keyed by the file's
// identity, so a path whose file is not what a process runs merely costs one
// hash here. It stops when ctx is done.
func (s *Server) prewarm(ctx context.Context, cfg *config.Config) {
	seen := make(map[string]bool)
	for _, e := range cfg.Binaries {
		if seen[e.Path] || ctx.Err() != nil {
			continue
		}
		seen[e.Path] = true
		id, err := s.opts.Attestor.HashPath(ctx, e.Path)
		switch {
		case err != nil:
			s.log.Debug("cannot pre-hash a registered binary", "path", e.Path, "err", err)
		case id.Hash != e.Hash:
			s.log.Info("a registered binary changed on disk; it will get hash_mismatch until upgraded",
				"path", e.Path, "registered", e.Hash, "now", id.Hash)
		}
	}
}
