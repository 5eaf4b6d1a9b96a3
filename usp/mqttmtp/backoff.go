package mqttmtp

import (
	"math"
	"time"
)

// Backoff is TR-369's connect retry: the n-th retry waits a random time
// between Min*Multiplier^(n-1) and Min*Multiplier^n, both capped at Max
// (MQTT.Client.{i}.ConnectRetryTime, ConnectRetryIntervalMultiplier,
// ConnectRetryMaxInterval). The jitter spreads a fleet's reconnections
// after a broker restart.
type Backoff struct {
	Min        time.Duration
	Multiplier float64
	Max        time.Duration
}

// DefaultBackoff is TR-181's default retry time and multiplier, capped
// at five minutes rather than its 8.5 hours: a gateway should not stay
// unmanaged for hours after a broker outage.
var DefaultBackoff = Backoff{Min: 5 * time.Second, Multiplier: 2, Max: 5 * time.Minute}

// Wait is how long to wait before retry n (from 1); rnd is in [0, 1).
func (b Backoff) Wait(n int, rnd float64) time.Duration {
	if n < 1 {
		n = 1
	}
	lo := b.bound(n - 1)
	hi := b.bound(n)
	return lo + time.Duration(rnd*float64(hi-lo))
}

func (b Backoff) bound(e int) time.Duration {
	d := float64(b.Min) * math.Pow(b.Multiplier, float64(e))
	if d > float64(b.Max) || math.IsInf(d, 0) || math.IsNaN(d) {
		return b.Max
	}
	return time.Duration(d)
}
