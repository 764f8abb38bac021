package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// TokensFile authenticates static bearer tokens listed, as SHA-256 hashes,
// in a JSON file (see the package documentation for the format). It
// re-reads the file when its content changes, checking at most once per
// second when a token is presented; no goroutine runs in the background. It
// is safe for concurrent use.
type TokensFile struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	set atomic.Pointer[[]tokenEntry] // the set in force

	checkMu   sync.Mutex   // held by the one caller re-reading the file
	nextCheck atomic.Int64 // UnixNano before which the file is not re-read
	lastState [32]byte     // guarded by checkMu: hash of the last content (or error) seen
}

type tokenEntry struct {
	name  string
	hash  [sha256.Size]byte
	roles []Role
}

const (
	tokensRecheck   = time.Second
	maxTokensFileSz = 1 << 20
)

// NewTokensFile loads the tokens file at path. It fails when the file cannot
// be read or is invalid: unknown JSON members, a plaintext "token" member, a
// missing or duplicate name, a sha256 that is not 64 hex digits or is
// listed twice, no roles or an unknown role. log receives reload outcomes;
// nil discards.
func NewTokensFile(path string, log *slog.Logger) (*TokensFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &TokensFile{path: path, log: log, now: time.Now}
	data, err := readTokensFile(path)
	if err != nil {
		return nil, err
	}
	set, err := parseTokensFile(data)
	if err != nil {
		return nil, fmt.Errorf("load tokens file %s: %w", path, err)
	}
	f.set.Store(&set)
	f.lastState = sha256.Sum256(data)
	f.nextCheck.Store(f.now().Add(tokensRecheck).UnixNano())
	return f, nil
}

// Authenticate looks bearer's hash up in the file, comparing it with every
// entry in constant time. An unknown token is refused as "token not
// recognized".
func (f *TokensFile) Authenticate(ctx context.Context, bearer string) (Identity, error) {
	if bearer == "" {
		return Identity{}, unauthenticated("no token")
	}
	if len(bearer) > maxTokenLen {
		return Identity{}, unauthenticated("token is too large")
	}
	f.maybeReload(ctx)
	h := sha256.Sum256([]byte(bearer))
	var match *tokenEntry
	set := *f.set.Load()
	// No early exit: the time taken does not depend on which entry matched.
	for i := range set {
		if subtle.ConstantTimeCompare(h[:], set[i].hash[:]) == 1 {
			match = &set[i]
		}
	}
	if match == nil {
		return Identity{}, errUnrecognized
	}
	return Identity{
		Subject: match.name,
		Name:    match.name,
		Roles:   slices.Clone(match.roles),
		Source:  SourceTokensFile,
	}, nil
}

// maybeReload re-reads the file if a second has passed since the last
// check. One caller does it; the others go on with the set in force.
func (f *TokensFile) maybeReload(ctx context.Context) {
	now := f.now().UnixNano()
	if now < f.nextCheck.Load() || !f.checkMu.TryLock() {
		return
	}
	defer f.checkMu.Unlock()
	if now < f.nextCheck.Load() {
		return
	}
	f.nextCheck.Store(now + int64(tokensRecheck))
	f.reloadLocked(ctx)
}

// reloadLocked reads and parses the file if its content changed. Failures
// keep the set in force and are logged once per distinct failure, not once
// per second.
func (f *TokensFile) reloadLocked(ctx context.Context) {
	data, err := readTokensFile(f.path)
	state := sha256.Sum256(data)
	if err != nil {
		state = sha256.Sum256([]byte("error: " + err.Error()))
	}
	if state == f.lastState {
		return
	}
	f.lastState = state
	if err != nil {
		f.log.ErrorContext(ctx, "reload tokens file; keeping the previous tokens", "path", f.path, "err", err)
		return
	}
	set, err := parseTokensFile(data)
	if err != nil {
		f.log.ErrorContext(ctx, "reload tokens file; keeping the previous tokens", "path", f.path, "err", err)
		return
	}
	f.set.Store(&set)
	f.log.InfoContext(ctx, "tokens file reloaded", "path", f.path, "tokens", len(set))
}

func readTokensFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open tokens file: %w", err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxTokensFileSz+1))
	if err != nil {
		return nil, fmt.Errorf("read tokens file: %w", err)
	}
	if len(data) > maxTokensFileSz {
		return nil, fmt.Errorf("read tokens file: larger than %d bytes", maxTokensFileSz)
	}
	return data, nil
}

// parseTokensFile validates the file. Its errors name entries by name or
// position and never quote a value, in case a secret was put where a hash
// belongs.
func parseTokensFile(data []byte) ([]tokenEntry, error) {
	var doc struct {
		Tokens *[]struct {
			Name   string   `json:"name"`
			SHA256 string   `json:"sha256"`
			Token  *string  `json:"token"`
			Roles  []string `json:"roles"`
		} `json:"tokens"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("invalid JSON at byte %d", syn.Offset)
		}
		return nil, fmt.Errorf("decode tokens file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode tokens file: data after the JSON object")
	}
	if doc.Tokens == nil {
		return nil, errors.New(`tokens file has no "tokens" array`)
	}
	set := make([]tokenEntry, 0, len(*doc.Tokens))
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]string{}
	for i, t := range *doc.Tokens {
		if t.Name == "" {
			return nil, fmt.Errorf("token %d has no name", i+1)
		}
		if names[t.Name] {
			return nil, fmt.Errorf("token name %q is listed twice", t.Name)
		}
		names[t.Name] = true
		if t.Token != nil {
			return nil, fmt.Errorf(`token %q has a plaintext "token"; store its "sha256" instead (printf %%s "$TOKEN" | sha256sum)`, t.Name)
		}
		var e tokenEntry
		e.name = t.Name
		if n, err := hex.Decode(e.hash[:], []byte(t.SHA256)); err != nil || n != sha256.Size || len(t.SHA256) != 2*sha256.Size {
			return nil, fmt.Errorf("token %q: sha256 is not 64 hex digits", t.Name)
		}
		if other, dup := hashes[e.hash]; dup {
			return nil, fmt.Errorf("tokens %q and %q have the same sha256", other, t.Name)
		}
		hashes[e.hash] = t.Name
		if len(t.Roles) == 0 {
			return nil, fmt.Errorf("token %q has no roles", t.Name)
		}
		for _, r := range t.Roles {
			role := Role(r)
			if !role.Known() {
				return nil, fmt.Errorf("token %q: unknown role %q (known: reader, writer, finance, admin)", t.Name, r)
			}
			if !slices.Contains(e.roles, role) {
				e.roles = append(e.roles, role)
			}
		}
		set = append(set, e)
	}
	return set, nil
}
