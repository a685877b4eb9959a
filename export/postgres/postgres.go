// Package postgres is the PostgreSQL sink of the export connectors: one
// row per reading, exactly once. Each batch's rows (COPY) and the
// gateway's checkpoint are written in one transaction, after checking
// that the stored checkpoint is where the batch starts; so a batch is
// committed whole or not at all, and an exporter that lost the answer
// to its commit (killed, database restarted, network cut) reads the
// checkpoint again rather than writing twice.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/thingnet/thingnet/export"
)

// DefaultTable is the readings table's default name.
const DefaultTable = "thingnet_readings"

// Config configures a Sink.
type Config struct {
	// DSN is a PostgreSQL connection string (postgres://user@host:port/db
	// or "host=... dbname=...").
	DSN string
	// Table is the readings table (default DefaultTable); its checkpoints
	// are in <table>_checkpoints, one row per gateway.
	Table string
}

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,50}$`)

// Sink writes readings to a PostgreSQL table.
type Sink struct {
	pool        *pgxpool.Pool
	table, cps  pgx.Identifier
	tableString string
}

var _ export.Sink = (*Sink)(nil)

// Open connects to the database and creates or migrates the tables.
func Open(ctx context.Context, c Config) (*Sink, error) {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if !tableName.MatchString(c.Table) {
		return nil, fmt.Errorf("postgres: table %q: use lower-case letters, digits and _ (at most 51), starting with a letter or _", c.Table)
	}
	cfg, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: dsn: %w", err)
	}
	cfg.MaxConns = 4
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Sink{pool: pool, table: pgx.Identifier{c.Table}, cps: pgx.Identifier{c.Table + "_checkpoints"}, tableString: c.Table}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// schemaVersion is the version of the tables this package writes.
const schemaVersion = 2

// migrate creates the tables under an advisory lock, so two exporters
// starting together do not race, and brings older ones up: version 2 adds
// the gateway's receive time and the late flag (docs/readings.md "Time").
func (s *Sink) migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: creating the tables: %w", err)
	}
	defer tx.Rollback(ctx)
	t, cps := s.table.Sanitize(), s.cps.Sanitize()
	idx := pgx.Identifier{s.tableString + "_device_time"}.Sanitize()
	stmts := []string{
		`SELECT pg_advisory_xact_lock(7417330001)`,
		`CREATE TABLE IF NOT EXISTS thingnet_export_schema (tbl text PRIMARY KEY, version int NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS ` + t + ` (
			gateway       text NOT NULL,
			log_index     bigint NOT NULL,
			seq           bigint NOT NULL,
			device        text NOT NULL,
			org           text NOT NULL,
			time          timestamptz NOT NULL,
			type          text NOT NULL,
			value         double precision,
			value_text    text,
			bytes         bytea,
			sealed        jsonb,
			attested_by   text,
			received_at   timestamptz,
			late          boolean NOT NULL DEFAULT false,
			anchor_height bigint,
			entry_hash    bytea NOT NULL,
			proof         text NOT NULL,
			exported_at   timestamptz NOT NULL DEFAULT now(),
			PRIMARY KEY (gateway, log_index, seq))`,
		`ALTER TABLE ` + t + ` ADD COLUMN IF NOT EXISTS received_at timestamptz`, // version 1 -> 2
		`ALTER TABLE ` + t + ` ADD COLUMN IF NOT EXISTS late boolean NOT NULL DEFAULT false`,
		`CREATE INDEX IF NOT EXISTS ` + idx + ` ON ` + t + ` (device, time)`,
		`CREATE TABLE IF NOT EXISTS ` + cps + ` (
			gateway    text PRIMARY KEY,
			next_index bigint NOT NULL,
			updated_at timestamptz NOT NULL DEFAULT now())`,
	}
	for _, q := range stmts {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("postgres: creating the tables: %w", err)
		}
	}
	var v int
	err = tx.QueryRow(ctx, `SELECT version FROM thingnet_export_schema WHERE tbl = $1`, s.tableString).Scan(&v)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := tx.Exec(ctx, `INSERT INTO thingnet_export_schema (tbl, version) VALUES ($1, $2)`, s.tableString, schemaVersion); err != nil {
			return fmt.Errorf("postgres: recording the schema version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("postgres: reading the schema version: %w", err)
	case v > schemaVersion:
		return fmt.Errorf("postgres: table %s is at schema version %d, newer than this exporter's %d: upgrade thingnet", s.tableString, v, schemaVersion)
	case v < schemaVersion:
		if _, err := tx.Exec(ctx, `UPDATE thingnet_export_schema SET version = $2 WHERE tbl = $1`, s.tableString, schemaVersion); err != nil {
			return fmt.Errorf("postgres: recording the schema version: %w", err)
		}
	}
	return tx.Commit(ctx)
}

// Checkpoint implements export.Sink.
func (s *Sink) Checkpoint(ctx context.Context, gateway string) (uint64, bool, error) {
	var next int64
	err := s.pool.QueryRow(ctx, `SELECT next_index FROM `+s.cps.Sanitize()+` WHERE gateway = $1`, gateway).Scan(&next)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("postgres: %w", err)
	}
	return uint64(next), true, nil
}

// columns of the readings table that Write fills.
var columns = []string{"gateway", "log_index", "seq", "device", "org", "time", "type", "value", "value_text", "bytes", "sealed",
	"attested_by", "received_at", "late", "anchor_height", "entry_hash", "proof"}

// Write implements export.Sink: in one transaction, it locks the
// gateway's checkpoint row, checks it is b.From (or absent), copies the
// rows and moves the checkpoint to b.Next.
func (s *Sink) Write(ctx context.Context, b *export.Batch) error {
	if b.Next > math.MaxInt64 {
		return fmt.Errorf("postgres: log index %d does not fit a bigint", b.Next)
	}
	rows := make([][]any, 0, len(b.Rows))
	for i := range b.Rows {
		r, err := values(&b.Rows[i])
		if err != nil {
			return err
		}
		rows = append(rows, r)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	defer tx.Rollback(ctx)
	cps := s.cps.Sanitize()
	var stored int64
	err = tx.QueryRow(ctx, `SELECT next_index FROM `+cps+` WHERE gateway = $1 FOR UPDATE`, b.Gateway).Scan(&stored)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// The first batch of this gateway: the insert fails if another
		// exporter inserted it meanwhile.
		if _, err := tx.Exec(ctx, `INSERT INTO `+cps+` (gateway, next_index) VALUES ($1, $2)`, b.Gateway, int64(b.From)); err != nil {
			return fmt.Errorf("postgres: creating the checkpoint of %s: %w", b.Gateway, err)
		}
	case err != nil:
		return fmt.Errorf("postgres: reading the checkpoint of %s: %w", b.Gateway, err)
	case uint64(stored) != b.From:
		return fmt.Errorf("%w: %s is at %d, the batch starts at %d", export.ErrCheckpointMoved, b.Gateway, stored, b.From)
	}
	if len(rows) > 0 {
		if _, err := tx.CopyFrom(ctx, s.table, columns, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("postgres: copying %d rows: %w", len(rows), err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE `+cps+` SET next_index = $2, updated_at = now() WHERE gateway = $1`, b.Gateway, int64(b.Next)); err != nil {
		return fmt.Errorf("postgres: moving the checkpoint of %s: %w", b.Gateway, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: committing entries %d..%d: %w", b.From, b.Next-1, err)
	}
	return nil
}

// Reset makes the export of gateway start again at from: it deletes the
// rows of entries from from on and moves the checkpoint there, in one
// transaction (a backfill, without duplicates).
func (s *Sink) Reset(ctx context.Context, gateway string, from uint64) (deleted int64, err error) {
	if from > math.MaxInt64 {
		return 0, fmt.Errorf("postgres: log index %d does not fit a bigint", from)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `DELETE FROM `+s.table.Sanitize()+` WHERE gateway = $1 AND log_index >= $2`, gateway, int64(from))
	if err != nil {
		return 0, fmt.Errorf("postgres: deleting rows from entry %d: %w", from, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+s.cps.Sanitize()+` (gateway, next_index) VALUES ($1, $2)
		ON CONFLICT (gateway) DO UPDATE SET next_index = EXCLUDED.next_index, updated_at = now()`, gateway, int64(from)); err != nil {
		return 0, fmt.Errorf("postgres: moving the checkpoint of %s: %w", gateway, err)
	}
	return tag.RowsAffected(), tx.Commit(ctx)
}

// values is a row's column values, in columns' order.
func values(r *export.Row) ([]any, error) {
	rd := &r.Reading
	if r.Index > math.MaxInt64 || rd.Seq > math.MaxInt64 {
		return nil, fmt.Errorf("postgres: entry %d seq %d does not fit a bigint", r.Index, rd.Seq)
	}
	var (
		value                 *float64
		text                  *string
		sealed                []byte
		attested, anchor, bts any
	)
	switch {
	case rd.Value != nil:
		value = rd.Value
		t := strconv.FormatFloat(*rd.Value, 'g', -1, 64)
		text = &t
	case rd.Sealed != nil:
		b, err := json.Marshal(rd.Sealed)
		if err != nil {
			return nil, fmt.Errorf("postgres: entry %d: %w", r.Index, err)
		}
		sealed = b
	default:
		bts = rd.Bytes
		if rd.Bytes == nil {
			bts = []byte{}
		}
		if utf8.Valid(rd.Bytes) {
			t := string(rd.Bytes)
			text = &t
		}
	}
	if rd.AttestedBy != "" {
		attested = rd.AttestedBy
	}
	if r.AnchorHeight > 0 {
		anchor = r.AnchorHeight
	}
	var sj, received any
	if sealed != nil {
		sj = string(sealed)
	}
	if rd.ReceivedAt != nil {
		received = rd.ReceivedAt.UTC().Truncate(time.Microsecond)
	}
	return []any{r.Gateway, int64(r.Index), int64(rd.Seq), rd.Device, r.Org, rd.Time.UTC().Truncate(time.Microsecond), rd.ContentType,
		value, text, bts, sj, attested, received, rd.Late, anchor, r.EntryHash, r.Proof}, nil
}

// Close closes the connections.
func (s *Sink) Close() error {
	s.pool.Close()
	return nil
}
