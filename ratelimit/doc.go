// Package ratelimit holds the token buckets and counters that bound what
// each device and each source address may cost a gateway.
//
// A Limiter keeps, per key (a device id, a source address, or whatever the
// caller chooses), three token buckets: messages, bytes and connection
// attempts. It refuses packets over the maximum size, and counts every
// refusal so that keys that keep exceeding their limits can be reported
// (Offenders) and, by organisation policy, suspended on the ledger.
//
// The core is pure: time comes from an injected Clock, and memory is
// bounded: at most maxKeys keys are tracked, the least recently used
// evicted beyond that. An evicted key starts again with full buckets and no
// refusals, so maxKeys must exceed the number of keys active at once; key
// unauthenticated sources by network (an IPv4 address, an IPv6 /64), not by
// anything a client can vary freely, so that one client cannot flush the
// table. A Limiter is safe for concurrent use.
package ratelimit
