// Package pgtest starts a real PostgreSQL server (Debian's binaries) in a
// temporary directory for tests and benchmarks, as the postgres user
// (PostgreSQL refuses to run as root).
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Bin is where Debian's PostgreSQL 15 binaries are.
const Bin = "/usr/lib/postgresql/15/bin"

// Server is a PostgreSQL server of a test.
type Server struct {
	Dir  string // data directory
	Port int
	DSN  string // postgres://postgres@127.0.0.1:<port>/postgres
	sock string
	t    testing.TB
}

// Start initialises a cluster in a new temporary directory and starts it
// on a free loopback port; it is stopped and removed when t ends. Without
// the binaries it skips t, unless $CI is set (scripts/test installs them).
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(filepath.Join(Bin, "postgres")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("PostgreSQL 15 is not installed (%v): scripts/test installs postgresql-15", err)
		}
		t.Skipf("PostgreSQL 15 is not installed in %s: apt-get install postgresql-15 (scripts/test does) to run this test", Bin)
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user to run PostgreSQL as (%v): apt-get install postgresql-15 creates it", err)
	}
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	// Not t.TempDir: its parents are closed to other users.
	root, err := os.MkdirTemp("", "thingnet-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{Dir: filepath.Join(root, "data"), sock: filepath.Join(root, "sock"), t: t}
	for _, d := range []string{s.Dir, s.sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := asPostgres("initdb", "-D", s.Dir, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Port = freePort(t)
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	s.start()
	t.Cleanup(func() { s.stop("immediate") })
	return s
}

func asPostgres(bin string, args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(Bin, bin)}, args...)...)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() {
	s.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=40", s.Port, s.sock)
	if out, err := asPostgres("pg_ctl", "-D", s.Dir, "-o", opts, "-l", filepath.Join(s.Dir, "server.log"), "-w", "-t", "60", "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "server.log"))
		s.t.Fatalf("starting PostgreSQL: %v\n%s\n%s", err, out, log)
	}
}

func (s *Server) stop(mode string) {
	if out, err := asPostgres("pg_ctl", "-D", s.Dir, "-m", mode, "-w", "-t", "60", "stop").CombinedOutput(); err != nil && !strings.Contains(string(out), "not running") {
		s.t.Logf("stopping PostgreSQL: %v\n%s", err, out)
	}
}

// Restart stops the server as a crash would (immediate: no checkpoint,
// connections cut) and starts it again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.stop("immediate")
	s.start()
}

// Stop stops the server as a crash would; Start starts it again.
func (s *Server) Stop() { s.stop("immediate") }

// Resume starts a server Stop stopped.
func (s *Server) Resume() { s.t.Helper(); s.start() }

// PSQL runs psql with a query and returns its unaligned output.
func (s *Server) PSQL(ctx context.Context, query string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(Bin, "psql"), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", s.DSN, "-c", query).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql -c %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}
