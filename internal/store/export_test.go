package store

import "time"

// SetLeaderPingInterval sets how often held leader locks check their
// connection; call it before any test starts.
func SetLeaderPingInterval(d time.Duration) { leaderPingInterval = d }
