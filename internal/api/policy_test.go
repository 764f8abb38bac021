package api

import (
	"testing"
)

// TestPolicyCoversEveryRPC: every RPC the server registers has a role
// entry (or is public), and every entry names a registered RPC, so that a
// new RPC cannot ship unreachable and a renamed one cannot leave a stale,
// misleading entry.
func TestPolicyCoversEveryRPC(t *testing.T) {
	t.Parallel()
	srv := NewGRPCServer(Deps{})
	defer srv.Stop()
	info := srv.GetServiceInfo()
	if missing := Policy.Missing(info, publicMethod); len(missing) > 0 {
		t.Errorf("RPCs without a policy entry: %v", missing)
	}
	registered := map[string]bool{}
	for svc, si := range info {
		for _, m := range si.Methods {
			registered["/"+svc+"/"+m.Name] = true
		}
	}
	for method, roles := range Policy {
		if !registered[method] {
			t.Errorf("policy entry %s names no registered RPC", method)
		}
		if len(roles) == 0 {
			t.Errorf("policy entry %s allows no role", method)
		}
	}
}

func TestPageToken(t *testing.T) {
	t.Parallel()
	tok := encodePageToken("abc", "sku_id=x")
	if got, err := decodePageToken(tok, "sku_id=x"); err != nil || got != "abc" {
		t.Errorf("decodePageToken(encode(abc)) = %q, %v; want abc", got, err)
	}
	if encodePageToken("", "f") != "" {
		t.Error("an empty position must encode as no next page")
	}
	for _, bad := range []struct{ tok, filter string }{
		{"not-base64!", ""},
		{"e30", ""}, // {} : no version
		{tok, "sku_id=y"},
	} {
		if _, err := decodePageToken(bad.tok, bad.filter); err == nil {
			t.Errorf("decodePageToken(%q, %q) accepted a bad token", bad.tok, bad.filter)
		}
	}
	if _, err := pageSize(-1); err == nil {
		t.Error("pageSize(-1) accepted a negative size")
	}
	if n, _ := pageSize(0); n != defaultPageSize {
		t.Errorf("pageSize(0) = %d, want the default %d", n, defaultPageSize)
	}
	if n, _ := pageSize(5000); n != maxPageSize {
		t.Errorf("pageSize(5000) = %d, want the cap %d", n, maxPageSize)
	}
}
