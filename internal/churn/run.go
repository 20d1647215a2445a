package churn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// retryFor is how long Apply retries a transaction the agent refused (a
// 429, or a connection it closed while another client held too many).
const retryFor = time.Minute

// Apply writes ops to Consul as one transaction.
func Apply(ctx context.Context, c *api.Client, ops api.TxnOps) error {
	q := (&api.QueryOptions{}).WithContext(ctx)
	deadline := time.Now().Add(retryFor)
	for {
		ok, resp, _, err := c.Txn().Txn(ops, q)
		switch {
		case err == nil && ok:
			return nil
		case err == nil:
			var msgs []string
			for _, e := range resp.Errors {
				msgs = append(msgs, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
			}
			return fmt.Errorf("transaction failed: %s", strings.Join(msgs, "; "))
		case ctx.Err() != nil || time.Now().After(deadline):
			return fmt.Errorf("transaction: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Options say how much Run changes.
type Options struct {
	Changes  int           // stop after this many changes (0: no limit)
	Duration time.Duration // stop after this long (0: no limit)
	Rate     float64       // changes a second; 0 writes each as soon as the one before is acknowledged
}

// Stats is what a run changed.
type Stats struct {
	Changes  int
	ByKind   [kinds]int
	Services map[string]bool // services whose targets changed
	Written  map[string]bool // of which those a change wrote, not a node's
	Last     time.Time       // when Consul acknowledged the last change
}

// Run draws changes from g and writes them to Consul one after another
// until opts says stop. Each write waits for the one before: the model
// the generator keeps is then Consul's catalog.
func Run(ctx context.Context, c *api.Client, g *Generator, opts Options) (Stats, error) {
	if opts.Changes <= 0 && opts.Duration <= 0 {
		return Stats{}, errors.New("churn: neither a number of changes nor a duration")
	}
	st := Stats{Services: map[string]bool{}, Written: map[string]bool{}}
	start := time.Now()
	for k := 0; opts.Changes <= 0 || k < opts.Changes; k++ {
		if opts.Duration > 0 && time.Since(start) >= opts.Duration {
			break
		}
		if opts.Rate > 0 {
			at := start.Add(time.Duration(float64(k) / opts.Rate * float64(time.Second)))
			select {
			case <-ctx.Done():
				return st, ctx.Err()
			case <-time.After(time.Until(at)):
			}
		}
		ch := g.Next()
		if err := Apply(ctx, c, ch.Ops); err != nil {
			return st, fmt.Errorf("churn: %s: %w", ch.Kind, err)
		}
		st.Last = time.Now()
		st.Changes++
		st.ByKind[ch.Kind]++
		for _, s := range ch.Services {
			st.Services[s] = true
			if !ch.Kind.Node() {
				st.Written[s] = true
			}
		}
	}
	return st, nil
}

// Kinds lists how many changes of each kind a run made, e.g. "register 12,
// deregister 9, …".
func (st Stats) Kinds() string {
	parts := make([]string, 0, kinds)
	for k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, st.ByKind[k]))
	}
	return strings.Join(parts, ", ")
}
