package storetest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/seatledger/seatledger/internal/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// TestNewDSN checks that each test gets its own migrated, empty database.
func TestNewDSN(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	a, b := storetest.NewDSN(t), storetest.NewDSN(t)
	if a == b {
		t.Fatalf("NewDSN returned %q twice", a)
	}
	var names []string
	for _, dsn := range []string{a, b} {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var name string
		var versions int
		if err := conn.QueryRow(ctx, `SELECT current_database(), (SELECT count(*) FROM allotment_versions)`).Scan(&name, &versions); err != nil {
			t.Fatalf("query a fresh database: %v", err)
		}
		if versions != 0 {
			t.Errorf("fresh database %s has %d allotment versions", name, versions)
		}
		names = append(names, name)
	}
	if names[0] == names[1] {
		t.Errorf("both DSNs reach database %s", names[0])
	}
}

// TestNew checks the store New returns is usable and current.
func TestNew(t *testing.T) {
	t.Parallel()
	st := storetest.New(t)
	ok, err := st.SchemaCurrent(t.Context())
	if err != nil || !ok {
		t.Errorf("SchemaCurrent = %v, %v; want true", ok, err)
	}
}
