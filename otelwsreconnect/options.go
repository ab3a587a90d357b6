package otelwsreconnect

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// An Option configures NewTrace. Options are applied in order, then
// validated together: an invalid one is an error from NewTrace.
type Option interface {
	apply(*config)
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	provider metric.MeterProvider
	attrs    []attribute.KeyValue
	errs     []error
}

// ErrInvalidOption is wrapped by every error NewTrace returns for an
// invalid option.
var ErrInvalidOption = errors.New("otelwsreconnect: invalid option")

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOption}, args...)...))
}

// WithMeterProvider records the metrics with a Meter of mp, named
// ScopeName. A nil MeterProvider is an invalid option. Default: the global
// MeterProvider (otel.GetMeterProvider) when NewTrace is called (until
// otel.SetMeterProvider is first called, the global one forwards to the
// MeterProvider it installs).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp == nil {
			c.fail("WithMeterProvider: nil MeterProvider")
			return
		}
		c.provider = mp
	})
}

// WithAttributes adds attrs to every measurement of the Trace, to tell
// Conns apart on a dashboard: semconv.ServerAddress("feed.example.com"),
// attribute.String("feed", "prices"). Each distinct set of values is a
// series of every metric (a histogram's is a series per bucket): give
// values that a fleet shares, a server or a feed, never one per Conn (an
// ID, a session token). It may be given more than once; the attributes
// add up. An attribute without a key, a key given twice, or
// one of this package's own keys (see the package documentation) is an
// invalid option. Default: none.
func WithAttributes(attrs ...attribute.KeyValue) Option {
	return optionFunc(func(c *config) { c.attrs = append(c.attrs, attrs...) })
}

func newConfig(opts []Option) (config, error) {
	var c config
	for _, o := range opts {
		if o == nil {
			c.fail("nil Option")
			continue
		}
		o.apply(&c)
	}
	if c.provider == nil {
		c.provider = otel.GetMeterProvider()
	}
	seen := make(map[attribute.Key]bool, len(c.attrs))
	for _, kv := range c.attrs {
		switch {
		case !kv.Valid():
			c.fail("WithAttributes: an attribute has no key (value %q)", kv.Value.String())
		case ownKeys[kv.Key]:
			c.fail("WithAttributes: %q is one of this package's own attributes", string(kv.Key))
		case seen[kv.Key]:
			c.fail("WithAttributes: %q given twice", string(kv.Key))
		}
		seen[kv.Key] = true
	}
	return c, errors.Join(c.errs...)
}
