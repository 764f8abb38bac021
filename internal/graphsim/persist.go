package graphsim

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// A persistent simulator (Options.StateDir) keeps in StateDir/state.json
// everything a client of its previous life depends on, so that a restart
// looks like the same tenant: its address, tenant id and apps, token
// signing key (tokens it issued stay valid), CA (clients that trust it keep
// trusting it), the tenant with its seats and waiting order, the id
// sequence, and the clock offset. The file is written whole (a temporary
// file renamed over it), mode 0600 in a directory of mode 0700.

// StateFileName is the name of the state file in Options.StateDir.
const StateFileName = "state.json"

// stateFormat names the state file's format; a file of another format is
// refused rather than misread.
const stateFormat = "graphsim-state/v1"

// savedState is the JSON form of the state file.
type savedState struct {
	Format  string    `json:"format"`
	SavedAt time.Time `json:"savedAt"`
	// Address is where the last Start listened (host:port).
	Address string `json:"address,omitempty"`
	// SigningKey is the token signing key, PKCS #8 PEM.
	SigningKey string `json:"signingKey"`
	// CACertificate and CAKey (PKCS #8 PEM) are the CA of the server
	// certificates; absent before the first Start.
	CACertificate string `json:"caCertificate,omitempty"`
	CAKey         string `json:"caKey,omitempty"`
	// ClockOffsetNanos is what AdvanceClock added to the clock.
	ClockOffsetNanos int64 `json:"clockOffsetNanos"`
	// IDSequence is the counter behind generated ids (assignments,
	// waiting members, errors): continuing it keeps new ids new.
	IDSequence uint64 `json:"idSequence"`
	// DeltaVersion is the directory's change counter: delta links of the
	// previous life carry at most this version.
	DeltaVersion int64 `json:"deltaVersion"`
	// Tenant is the tenant, as Snapshot returns it.
	Tenant Tenant `json:"tenant"`
	// Seats are, per allotment, the users and devices holding a seat
	// (restored as they were, not recomputed).
	Seats map[string][]string `json:"seats"`
	// WaitingOrder is, per allotment, the waiting member ids in the order
	// they are served.
	WaitingOrder map[string][]string `json:"waitingOrder,omitempty"`
}

// restoreState is what load takes from a state file beyond the tenant.
type restoreState struct {
	seats        map[string][]string
	waitingOrder map[string][]string
}

// readState reads dir's state file; ok is false when there is none.
func readState(dir string) (st savedState, ok bool, err error) {
	path := filepath.Join(dir, StateFileName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return savedState{}, false, nil
	}
	if err != nil {
		return savedState{}, false, fmt.Errorf("read simulator state: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return savedState{}, false, fmt.Errorf("simulator state %s: %w (move the file away to start from a fresh tenant)", path, err)
	}
	if st.Format != stateFormat {
		return savedState{}, false, fmt.Errorf("simulator state %s: format %q, want %q (move the file away to start from a fresh tenant)", path, st.Format, stateFormat)
	}
	return st, true, nil
}

func parseSigningKey(p string) (*rsa.PrivateKey, error) {
	b, _ := pem.Decode([]byte(p))
	if b == nil {
		return nil, errors.New("signing key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	key, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("signing key: not an RSA key")
	}
	return key, nil
}

// restoreCounters continues the previous life's counters after load: ids
// go on from its sequence, and the directory's change counter moves past
// every version it reached, with every earlier delta link expired (the
// per-object change history is not saved, so those links would miss
// changes): following one answers 410 syncStateNotFound, as Graph does
// when it drops a sync state, and the client lists everything again.
// The caller holds s.mu.
func (s *Server) restoreCounters(saved savedState) {
	s.idSeq = saved.IDSequence
	s.st.version = max(s.st.version, saved.DeltaVersion) + 1
	s.st.deltaFloor = s.st.version
	s.offset.Store(saved.ClockOffsetNanos)
}

// stateLocked returns the state to save. The caller holds s.mu.
func (s *Server) stateLocked() savedState {
	st := savedState{
		Format:           stateFormat,
		ClockOffsetNanos: s.offset.Load(),
		IDSequence:       s.idSeq,
		DeltaVersion:     s.st.version,
		Tenant:           s.snapshotLocked(),
		Seats:            map[string][]string{},
		WaitingOrder:     map[string][]string{},
	}
	for aid, holders := range s.st.seats {
		if len(holders) > 0 {
			st.Seats[aid] = slices.Sorted(maps.Keys(holders))
		}
	}
	for aid, q := range s.st.queue {
		for _, w := range q {
			st.WaitingOrder[aid] = append(st.WaitingOrder[aid], w.ID)
		}
	}
	return st
}

// Save writes the simulator's state to Options.StateDir now. A persistent
// simulator also saves by itself: at Start, shortly after every change
// while it serves (changes that land while a save runs are saved right
// after it), and at Close; so a process killed without Close loses at most
// the changes of the last few milliseconds. Save fails without a StateDir.
func (s *Server) Save() error {
	if s.stateDir == "" {
		return errors.New("graphsim: Save without Options.StateDir")
	}
	err := s.save()
	if s.onSave != nil {
		s.onSave(err)
	}
	return err
}

func (s *Server) save() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.mu.Lock()
	st := s.stateLocked()
	s.mu.Unlock()
	st.SavedAt = time.Now().UTC()
	keyDER, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		return fmt.Errorf("save simulator state: signing key: %w", err)
	}
	st.SigningKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	s.startMu.Lock()
	ca := s.ca
	st.Address = s.addr
	s.startMu.Unlock()
	if ca != nil {
		der, err := x509.MarshalPKCS8PrivateKey(ca.key)
		if err != nil {
			return fmt.Errorf("save simulator state: ca key: %w", err)
		}
		st.CACertificate = string(ca.pem)
		st.CAKey = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	}
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("save simulator state: %w", err)
	}
	if err := writePrivateFile(s.stateDir, StateFileName, append(b, '\n')); err != nil {
		return fmt.Errorf("save simulator state: %w", err)
	}
	return nil
}

// writePrivateFile replaces dir/name with data, mode 0600, through a
// temporary file and a rename, so that a crash leaves the old file or the
// new one; dir is created, or tightened, to mode 0700.
func writePrivateFile(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file 0600 already.
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable where the file system allows
		d.Close()
	}
	return nil
}

// write locks the tenant for a change and returns the unlock, which also
// schedules a save of a persistent simulator.
func (s *Server) write() func() {
	s.mu.Lock()
	return func() {
		s.mu.Unlock()
		s.changed()
	}
}

// changed schedules a save; a save already scheduled covers this change
// too.
func (s *Server) changed() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// saveLoop saves after each change until stop is closed.
func (s *Server) saveLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case <-s.dirty:
			if err := s.Save(); err != nil {
				s.log.Error("graphsim save state", "dir", s.stateDir, "err", err)
			}
		}
	}
}
