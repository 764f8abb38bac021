package migrations_test

import (
	"io/fs"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/seatledger/seatledger/migrations"
)

// TestFiles checks what goose cannot: file names are NNNNN_snake_case.sql,
// numbered 1, 2, 3 … without gaps or duplicates, and each file has both an
// Up and a Down section.
func TestFiles(t *testing.T) {
	t.Parallel()
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no migrations embedded")
	}
	valid := regexp.MustCompile(`^(\d{5})_[a-z0-9_]+\.sql$`)
	for i, name := range names { // fs.Glob returns names sorted
		m := valid.FindStringSubmatch(name)
		if m == nil {
			t.Errorf("%s: name is not NNNNN_snake_case.sql", name)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n != i+1 {
			t.Errorf("%s: number %d, want %d (numbers run 1, 2, 3 … with no gap or duplicate)", name, n, i+1)
		}
		b, err := fs.ReadFile(migrations.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		up := strings.Index(string(b), "-- +goose Up")
		down := strings.Index(string(b), "-- +goose Down")
		if up < 0 || down < up {
			t.Errorf("%s: want a -- +goose Up section followed by a -- +goose Down section", name)
		}
	}
}
