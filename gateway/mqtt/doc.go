// Package mqtt is the gateway's embedded MQTT broker (MQTT 3.1.1 and 5, on
// github.com/mochi-mqtt/server/v2). Devices connect with their device id as
// username and a CWT signed by their current key as password, publish signed
// readings to things/<device id>/readings, and may subscribe where the
// ledger's grants allow.
//
// The broker depends only on the small interfaces defined here
// (Authenticator, ACL, Limiter) and on the gateway's edge contract (package
// gateway/edge: the Ingestor, its errors, the rate-limit keys); the gateway
// implements them with the ledger, the data log and the rate limiter. Cheap checks run first: the
// connection rate of the source address and of the device id is checked
// before any signature is verified, and a message's size and rate before its
// reading is.
//
// A QoS 1 PUBLISH is acknowledged (PUBACK; PUBREC for QoS 2) only once the
// Ingestor has said the reading is durably stored. With an Ingestor that is
// an edge.Pipeliner (the gateway), a connection's QoS 0 and 1 readings are
// pipelined: up to 64 are in the gateway at once, their PUBACKs go out in
// the order of the PUBLISHes, and a connection whose pipeline is full is
// not read until a reading is answered. See Broker's hook OnPublish for how
// this is done with mochi.
package mqtt
