// Package lang is the agreement language: documents (YAML or JSON), their
// strict parser, the limits, and the data an agreement's state and effects
// are made of (Instance, Action). It evaluates nothing, so it carries no
// CEL: package agreements compiles and runs documents.
package lang
