package auth

import "time"

// SetClock makes f read the time from now and restarts its once-a-second
// recheck from now(), so tests decide when the file is re-read.
func (f *TokensFile) SetClock(now func() time.Time) {
	f.checkMu.Lock()
	defer f.checkMu.Unlock()
	f.now = now
	f.nextCheck.Store(now().Add(tokensRecheck).UnixNano())
}
