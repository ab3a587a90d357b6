package otelwsreconnect

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/wsreconnect/wsreconnect"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// Every invalid option is an error wrapping ErrInvalidOption, each named,
// all in one error.
func TestInvalidOptions(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts []Option
		want []string
	}{
		{"nil MeterProvider", []Option{WithMeterProvider(nil)}, []string{"nil MeterProvider"}},
		{"nil Option", []Option{nil}, []string{"nil Option"}},
		{"attribute without a key", []Option{WithAttributes(attribute.String("", "x"))}, []string{`an attribute has no key (value "x")`}},
		{"a key twice", []Option{WithAttributes(base), WithAttributes(attribute.String("server.address", "other"))},
			[]string{`"server.address" given twice`}},
		{"the package's own key", []Option{WithAttributes(attribute.String("websocket.client.decision", "x"))},
			[]string{`"websocket.client.decision" is one of this package's own attributes`}},
		{"all together", []Option{WithMeterProvider(nil), WithAttributes(attribute.String("http.response.status_code", "x"), attribute.String("", ""))},
			[]string{"nil MeterProvider", `"http.response.status_code" is one of`, `an attribute has no key`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := NewTrace(tt.opts...)
			if tr != nil || !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("NewTrace: %v, %v; want an ErrInvalidOption", tr, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if n := strings.Count(err.Error(), ErrInvalidOption.Error()); n != len(tt.want) {
				t.Errorf("error %q names %d problems, want %d", err, n, len(tt.want))
			}
		})
	}
}

// Without WithMeterProvider, the metrics go to the global MeterProvider.
func TestDefaultIsTheGlobalMeterProvider(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	// Left installed: the other tests name their MeterProvider.
	otel.SetMeterProvider(mp)
	tr, err := NewTrace(WithAttributes(base))
	if err != nil {
		t.Fatal(err)
	}
	tr.StateChanged(wsreconnect.StateConnected)
	want := []string{
		"websocket.client.connection.count{websocket.client.connection.state=connected} = 1",
		"websocket.client.connection.count{websocket.client.connection.state=connecting} = 0",
	}
	if got := points(t, r); !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// Attributes given in several WithAttributes add up, on every metric.
func TestAttributesAddUp(t *testing.T) {
	r := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	defer mp.Shutdown(context.Background())
	tr, err := NewTrace(WithMeterProvider(mp), WithAttributes(base), WithAttributes(attribute.String("feed", "prices")))
	if err != nil {
		t.Fatal(err)
	}
	tr.DialStart(wsreconnect.DialStartInfo{Attempt: 1})
	tr.QueueChanged(wsreconnect.QueueInfo{Depth: 1})
	want := []string{
		"websocket.client.connection.count{feed=prices,websocket.client.connection.state=connecting} = 1",
		"websocket.client.send_queue.length{feed=prices} = 1",
	}
	if got := points(t, r); !slices.Equal(got, want) {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}
