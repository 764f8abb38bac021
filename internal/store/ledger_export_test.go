package store

import "context"

// LiveChargeback is Chargeback counting every day from the history, as if
// the ledger were empty and every day open: what the ledger must equal.
func (s *Store) LiveChargeback(ctx context.Context, p ChargebackParams) (Chargeback, error) {
	return s.chargeback(ctx, p, true)
}
