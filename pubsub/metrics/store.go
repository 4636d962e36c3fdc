package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringcast/ringcast/pubsub/store"
)

// storeSizeTimeout bounds the query of one scrape's store size.
const storeSizeTimeout = 5 * time.Second

// storeCollector reads a store's size at each scrape.
type storeCollector struct {
	st   store.Sizer
	size *prometheus.Desc
}

// NewStoreCollector returns a collector of the size of the store beneath
// a node's durable topics (ringcast_store_size_bytes), read at each scrape
// with a bound of 5 s. A failed read is reported as the scrape's error for
// that metric; the others are served.
func NewStoreCollector(st store.Sizer, opts ...Option) prometheus.Collector {
	o := newOptions(opts)
	d := descs{o: o}
	return &storeCollector{st: st, size: d.new("ringcast_store_size_bytes",
		"Bytes the store beneath durable topics takes: the SQLite file and its write-ahead log, or the PostgreSQL tables with their indexes.")}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.size }

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), storeSizeTimeout)
	defer cancel()
	n, err := c.st.Size(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.size, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(n))
}
