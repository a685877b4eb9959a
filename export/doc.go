// Package export follows a gateway's data log from a checkpoint and
// writes the readings its identity may read to other systems: PostgreSQL
// (exactly once: the checkpoint is committed with the rows), NATS
// JetStream (at least once, de-duplicated by the server) and signed
// webhooks (at least once, with retries and a dead-letter list). The
// sinks live in the subpackages; docs/export.md says what each guarantees.
package export
