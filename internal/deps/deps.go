//go:build tools

// Package deps pins modules that packages under construction will import,
// so that concurrent work does not need to change go.mod. Remove an import
// here once real code imports it.
package deps

import (
)
