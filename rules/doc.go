// Package rules evaluates rules over windows of a device's readings where
// the readings arrive (a node's gateway): a CEL condition such as
// `mean(temperature, 5m) > 30 && count(5m) >= 3`, compiled and cost-limited
// like agreements' guards, kept per device in bounded sliding windows, with
// hysteresis, cooldown and de-duplication per (rule, device), and actions
// (a signed webhook, a log line, a counter). docs/data.md, "Rules".
package rules
