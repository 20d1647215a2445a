package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/custom-sd/custom-sd/internal/churn"
)

// randomChurn changes the catalog rate times a second for d with every kind
// of change internal/churn makes: instances in and out, health flips, tags,
// meta, port and address rewritten in place, node meta, node checks,
// services appearing and vanishing. It counts the requests and response
// bytes from the start until settle after the last change, which includes
// the reads the changes cause. Then it compares the file at out with
// Consul's answers, label by label: if they are equal, the file became
// right when w last saw it replaced (custom-sd writes no unchanged file),
// and converge is that time after the last change.
func randomChurn(ctx context.Context, a *agent, count counter, w *fileWatch, out string, d, settle time.Duration, rate int) (churnStats, error) {
	var st churnStats
	model, err := churn.Load(ctx, a.client, 16)
	if err != nil {
		return st, fmt.Errorf("churn: %w", err)
	}
	gen := churn.NewGenerator(model, rand.Uint64())
	reqs, bytes := count()
	run, err := churn.Run(ctx, a.client, gen, churn.Options{Duration: d, Rate: float64(rate)})
	if err != nil {
		return st, err
	}
	time.Sleep(time.Until(run.Last.Add(settle)))
	reqsAfter, bytesAfter := count()
	st.changes, st.services, st.written, st.kinds = run.Changes, len(run.Services), len(run.Written), run.Kinds()
	st.requests, st.bytes = reqsAfter-reqs, bytesAfter-bytes
	if bytes < 0 {
		st.bytes = -1
	}

	want, err := churn.Expected(ctx, a.client, ",", 16)
	if err != nil {
		return st, fmt.Errorf("churn: %w", err)
	}
	got, err := churn.ReadFile(out)
	if err != nil {
		return st, fmt.Errorf("churn: %w", err)
	}
	diff := churn.Diff(want, got)
	st.wrong = len(diff)
	for _, d := range diff[:min(len(diff), 10)] {
		fmt.Fprintln(os.Stderr, "churn: differs:", d)
	}
	st.converge = max(w.last().Sub(run.Last), 0)
	fmt.Fprintf(os.Stderr, "churn: %d changes (%s) to %d services (%d written); %d differences %s after the last\n",
		st.changes, st.kinds, st.services, st.written, st.wrong, settle)
	return st, nil
}

// convergence prints how long after the churn the file equalled Consul.
func (st churnStats) convergence(settle time.Duration) string {
	if st.wrong > 0 {
		return fmt.Sprintf("not within %s: %d labels or targets differ", settle, st.wrong)
	}
	return ms(st.converge)
}
