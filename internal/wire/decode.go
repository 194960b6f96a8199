package wire

import (
	"fmt"
	"strings"
)

// Decode decodes any mciv message by the subject it came on: a *Batch for
// samples, an *Event for events, an *Alert for alerts, an *Ack for
// acknowledgements and an *Action for failover decisions.
func Decode(subject string, data []byte) (any, error) {
	switch {
	case strings.HasPrefix(subject, SamplesPrefix+"."):
		return DecodeBatch(data)
	case strings.HasPrefix(subject, EventsPrefix+"."):
		return DecodeEvent(data)
	case strings.HasPrefix(subject, AlertsPrefix+"."):
		return DecodeAlert(data)
	case strings.HasPrefix(subject, AcksPrefix+"."):
		return DecodeAck(data)
	case strings.HasPrefix(subject, ActionsPrefix+"."):
		return DecodeAction(data)
	}
	return nil, fmt.Errorf("subject %q: not an mciv subject", subject)
}
