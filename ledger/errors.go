package ledger

import (
	"errors"

	"github.com/thingnet/thingnet/record"
)

// logOf is the message of err without its code name (the code travels
// separately in ABCI results).
func logOf(err error) string {
	var e *record.Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return err.Error()
}
