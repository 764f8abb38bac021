package storetest

import "testing"

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	tests := []struct{ dsn, want string }{
		{"host=/tmp/pg user=postgres dbname=postgres sslmode=disable", "host=/tmp/pg user=postgres dbname=postgres sslmode=disable dbname=test_1"},
		{"postgres://app:pw@db:5432/seatledger?sslmode=disable", "postgres://app:pw@db:5432/test_1?sslmode=disable"},
		{"postgresql://app@db", "postgresql://app@db/test_1"},
	}
	for _, tt := range tests {
		got, err := withDatabase(tt.dsn, "test_1")
		if err != nil || got != tt.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tt.dsn, got, err, tt.want)
		}
	}
}
