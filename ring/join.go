package ring

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"time"
)

// seedResolveTimeout bounds one DNS lookup of a seed's host name.
const seedResolveTimeout = 5 * time.Second

// JoinSeeds joins the cluster through Config.Seeds, and keeps trying until
// it succeeds: it makes a first attempt before returning and, if no seed
// answers, goes on in the background, waiting JoinRetryMin after the first
// failed attempt and twice as long after each further one, up to
// JoinRetryMax, with random jitter, until a seed answers, another member
// joins this node, or the Ring leaves or closes. Every attempt resolves the
// seeds' host names again and tries every address found, except this
// node's own. Each failed attempt is logged once, with the wait before the
// next.
//
// JoinSeeds returns nil when the first attempt succeeded (or there are no
// seeds), ctx's error when ctx ended it, and otherwise an error wrapping
// ErrJoin that describes the failure while the Ring keeps trying; Joined
// reports the outcome. It is separate from New so that a program can
// finish setting up whatever other members reach it through (a node-to-node
// listener) before they learn of it. Calling it again while the
// background attempts run, or after they succeeded, does nothing and
// returns nil. It returns ErrClosed after Close and ErrLeft after Leave.
func (r *Ring) JoinSeeds(ctx context.Context) error {
	if r.closed.Load() {
		return ErrClosed
	}
	if r.leaving.Load() {
		return ErrLeft
	}
	if len(r.set.Seeds) == 0 || !r.seedsStarted.CompareAndSwap(false, true) {
		return nil
	}
	r.joiningSeeds.Store(true)
	_, err := r.joinSeedsOnce(ctx)
	if err == nil {
		r.joiningSeeds.Store(false)
		return nil
	}
	r.life.RLock()
	defer r.life.RUnlock()
	if r.closed.Load() {
		r.joiningSeeds.Store(false)
		return ErrClosed
	}
	wait := r.set.JoinRetryMin
	r.log.Warn("joining the cluster failed; retrying in the background",
		"seeds", r.set.Seeds, "retry_in", wait, "err", err)
	r.wg.Add(1)
	go r.joinLoop(wait)
	return err
}

// Joined reports whether this node is part of a cluster with other
// members: a join succeeded, or another member joined this node.
func (r *Ring) Joined() bool {
	return r.joined.Load() || len(r.ml.Members()) > 1
}

// Joining reports whether JoinSeeds is still trying to join. While it is,
// members of the cluster may already know this node before its own view
// shows them.
func (r *Ring) Joining() bool { return r.joiningSeeds.Load() }

// joinLoop retries joining the seeds until it succeeds, waiting first for
// wait and then for twice as long after each failure, up to JoinRetryMax.
func (r *Ring) joinLoop(wait time.Duration) {
	defer r.wg.Done()
	defer r.joiningSeeds.Store(false)
	t := time.NewTimer(jitter(wait))
	defer t.Stop()
	for attempt := 2; ; attempt++ {
		select {
		case <-r.done:
			return
		case <-t.C:
		}
		if r.leaving.Load() {
			return
		}
		if r.Joined() {
			r.log.Info("joined the cluster: another member joined this node", "attempts", attempt-1)
			return
		}
		contacted, err := r.joinSeedsOnce(r.ctx)
		if err == nil {
			r.log.Info("joined the cluster", "seeds", r.set.Seeds, "contacted", contacted, "attempts", attempt)
			return
		}
		if r.closed.Load() || r.leaving.Load() {
			return
		}
		wait = min(2*wait, r.set.JoinRetryMax)
		r.log.Warn("joining the cluster failed; retrying",
			"seeds", r.set.Seeds, "attempt", attempt, "retry_in", wait, "err", err)
		t.Reset(jitter(wait))
	}
}

// joinSeedsOnce resolves the seeds and joins every address found. It fails
// when none could be contacted.
func (r *Ring) joinSeedsOnce(ctx context.Context) (int, error) {
	addrs, resolveErr := r.resolveSeeds(ctx)
	if len(addrs) == 0 {
		if resolveErr == nil {
			resolveErr = errors.New("the seeds name only this node")
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("%w: %w", ErrJoin, resolveErr)
	}
	n, err := r.Join(ctx, addrs...)
	if err != nil && resolveErr != nil {
		err = fmt.Errorf("%w (%w)", err, resolveErr)
	}
	return n, err
}

// resolveSeeds returns the gossip addresses Config.Seeds stand for, without
// this node's own address, and the errors of the lookups that failed.
func (r *Ring) resolveSeeds(ctx context.Context) ([]string, error) {
	var (
		addrs []string
		errs  []error
	)
	for _, seed := range r.set.Seeds {
		found, err := resolveSeed(ctx, seed)
		if err != nil {
			errs = append(errs, err)
		}
		for _, a := range found {
			if a != r.gossipAddr && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs, errors.Join(errs...)
}

// resolveSeed returns the "ip:port" addresses seed stands for: itself when
// its host is an IP address, every address its host name resolves to
// otherwise.
func resolveSeed(ctx context.Context, seed string) ([]string, error) {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return nil, fmt.Errorf("seed %q: %w", seed, err)
	}
	if ip := net.ParseIP(host); ip != nil {
		return []string{net.JoinHostPort(ip.String(), port)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, seedResolveTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("seed %q: %w", seed, err)
	}
	addrs := make([]string, 0, len(ips))
	for _, ip := range ips {
		if ip.Zone != "" {
			// A link-local address needs its zone, which memberlist's
			// address parsing does not keep.
			continue
		}
		a := net.JoinHostPort(ip.IP.String(), port)
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs, nil
}

// jitter returns d shortened by up to 20% at random, so that nodes started
// together do not retry in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}
