package metrics

import (
	"reflect"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ringcast/ringcast/pubsub/gateway"
)

// gatewayMetric names the metric of one field of gateway.Stats.
type gatewayMetric struct {
	name, help string
}

// gatewayMetrics names and explains the fields of gateway.Stats, by their
// JSON name. A field missing here is exported all the same (see
// gatewayFields).
var gatewayMetrics = map[string]gatewayMetric{
	"connections":            {"ringcast_gateway_connections", "WebSocket connections open."},
	"queued_bytes":           {"ringcast_gateway_queued_bytes", "Bytes waiting in the outbound queues of the WebSocket connections."},
	"topics":                 {"ringcast_gateway_topics", "Topics the gateway holds a subscription to for its clients."},
	"accepted":               {"ringcast_gateway_connections_accepted_total", "WebSocket connections upgraded."},
	"refused":                {"ringcast_gateway_upgrades_refused_total", "WebSocket upgrades refused, for any reason."},
	"refused_host":           {"ringcast_gateway_upgrades_refused_host_total", "WebSocket upgrades refused for a Host header not allowed (part of ringcast_gateway_upgrades_refused_total)."},
	"refused_origin":         {"ringcast_gateway_upgrades_refused_origin_total", "WebSocket upgrades refused for an Origin not allowed (part of ringcast_gateway_upgrades_refused_total)."},
	"refused_conn_limit":     {"ringcast_gateway_upgrades_refused_conn_limit_total", "WebSocket upgrades refused because their address had as many connections open as one address may (part of ringcast_gateway_upgrades_refused_total)."},
	"denied":                 {"ringcast_gateway_denied_total", "Joins, history reads and publishes by clients refused by the authorization rules."},
	"rate_limited_joins":     {"ringcast_gateway_joins_rate_limited_total", "Joins by clients refused by a rate limit."},
	"rate_limited_publishes": {"ringcast_gateway_publishes_rate_limited_total", "Publishes by clients refused by a rate limit."},
	"flood_closed":           {"ringcast_gateway_flood_closed_total", "Connections closed for going on past their rate limits (flooding)."},
	"joins":                  {"ringcast_gateway_joins_total", "Successful joins of topics by clients, rejoins included."},
	"publishes":              {"ringcast_gateway_publishes_total", "Successful publishes by clients."},
	"frames_in":              {"ringcast_gateway_frames_received_total", "Messages read from clients."},
	"frames_out":             {"ringcast_gateway_frames_sent_total", "Messages written to clients."},
	"slow_consumers":         {"ringcast_gateway_slow_consumers_total", "Connections closed because the client did not take what was sent to it."},
	"errors":                 {"ringcast_gateway_errors_total", "Error replies, failed publishes and undecodable broker messages."},
	"subscribe_errors":       {"ringcast_gateway_subscribe_errors_total", "Subscriptions to the cluster that failed."},
	"channel_errors":         {"ringcast_gateway_channel_errors_total", "Channel errors sent to clients because the cluster ended a subscription."},
	"resets":                 {"ringcast_gateway_join_resets_total", "Resuming joins answered \"reset\": the topic's history no longer reached back."},
	"sessions":               {"ringcast_gateway_sessions", "Joins of channel topics in progress."},
	"channel_pushes":         {"ringcast_gateway_channel_pushes_total", "Messages channels pushed to their sessions."},
}

// gatewayField is one numeric field of gateway.Stats and its metric.
type gatewayField struct {
	index []int
	desc  *prometheus.Desc
	typ   prometheus.ValueType
}

// gatewayFields lists the numeric fields of gateway.Stats, nested structs
// included: unsigned integers are counters, signed ones gauges (the
// convention of gateway.Stats). A field without an entry in gatewayMetrics
// is named after its JSON name: ringcast_gateway_NAME_total for a counter,
// ringcast_gateway_NAME for a gauge; a nested struct's fields get its name
// and "_" before theirs.
func gatewayFields(d *descs) []gatewayField {
	var out []gatewayField
	var walk func(t reflect.Type, index []int, prefix string)
	walk = func(t reflect.Type, index []int, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := jsonName(f)
			if name == "" {
				continue
			}
			idx := append(slices.Clone(index), i)
			var typ prometheus.ValueType
			switch f.Type.Kind() {
			case reflect.Struct:
				walk(f.Type, idx, prefix+name+"_")
				continue
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				typ = prometheus.CounterValue
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				typ = prometheus.GaugeValue
			default:
				continue
			}
			m, ok := gatewayMetrics[prefix+name]
			if !ok {
				m.name = "ringcast_gateway_" + prefix + name
				if typ == prometheus.CounterValue {
					m.name += "_total"
				}
				m.help = "The gateway's Stats." + f.Name + " (see the JSON field " + prefix + name + " of gateway.Stats)."
			}
			out = append(out, gatewayField{index: idx, desc: d.new(m.name, m.help), typ: typ})
		}
	}
	walk(reflect.TypeFor[gateway.Stats](), nil, "")
	return out
}

// jsonName returns a field's JSON name, snake_case, or "" for a field
// left out of JSON.
func jsonName(f reflect.StructField) string {
	tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	switch tag {
	case "-":
		return ""
	case "":
		return snake(f.Name)
	}
	return tag
}

// snake converts a Go name to snake_case ("FramesIn" → "frames_in").
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// gatewayCollector reads a gateway Handler's counters at each scrape.
type gatewayCollector struct {
	h      *gateway.Handler
	d      descs
	fields []gatewayField
}

// NewGatewayCollector returns a collector of the counters of a WebSocket
// gateway (h.Stats, read once per scrape), for the embedding program to
// register in its registry. Every numeric field of [gateway.Stats] is
// exported, fields added to it later included: the package documentation
// lists the metrics.
func NewGatewayCollector(h *gateway.Handler, opts ...Option) prometheus.Collector {
	c := &gatewayCollector{h: h, d: descs{o: newOptions(opts)}}
	c.fields = gatewayFields(&c.d)
	return c
}

// Describe sends the descriptors of every metric.
func (c *gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all {
		ch <- d
	}
}

// Collect reads the gateway's counters once and sends the metrics.
func (c *gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	s := reflect.ValueOf(c.h.Stats())
	for _, f := range c.fields {
		v := s.FieldByIndex(f.index)
		var x float64
		if v.CanUint() {
			x = float64(v.Uint())
		} else {
			x = float64(v.Int())
		}
		ch <- prometheus.MustNewConstMetric(f.desc, f.typ, x)
	}
}
