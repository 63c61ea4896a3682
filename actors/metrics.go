package actors

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/procsup/procsup/messages"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Metrics go through the MeterProvider given to UseMeterProvider for the actor system,
// or else the actor system's own (actor.WithMetricProviders, which also turns on
// protoactor's per-message instrumentation); with neither, nothing is recorded and
// nothing is kept. The names and units follow the
// OpenTelemetry conventions (a Prometheus exporter turns procsup.process.exits into
// procsup_process_exits_total); the labels are the process's name (its spec's, or its
// pool's) and the reason, never an OS pid. Counters and histograms are recorded where
// the event happens; the gauges (processes by state, memory, CPU, pools) are read only
// when the metrics are collected, so idle processes cost nothing.

// meterName is the instrumentation scope of procsup's metrics.
const meterName = "github.com/procsup/procsup"

// instruments are the metrics of one MeterProvider, made once.
type instruments struct {
	starts, exits, restarts, limits, logsDropped metric.Int64Counter
	rollouts, retirements                        metric.Int64Counter
	initDuration, pingRTT, acquireWait           metric.Float64Histogram

	mu    sync.Mutex
	procs map[*process]struct{} // the process actors alive, read by the gauges
	pools map[*pool]struct{}
}

var (
	instrumentsOf sync.Map // metric.MeterProvider -> *instruments
	providerOf    sync.Map // *actor.ActorSystem -> metric.MeterProvider, from UseMeterProvider
)

// UseMeterProvider records procsup's metrics of system's actors through mp, without
// protoactor's own per-message instrumentation (which the actor system's
// MetricsProvider turns on). Call it before spawning them.
func UseMeterProvider(system *actor.ActorSystem, mp metric.MeterProvider) {
	providerOf.Store(system, mp)
}

// metricsOf returns the instruments of system's MeterProvider, or nil when it has none.
func metricsOf(system *actor.ActorSystem) *instruments {
	if system == nil {
		return nil
	}
	var mp metric.MeterProvider
	if v, ok := providerOf.Load(system); ok {
		mp = v.(metric.MeterProvider)
	} else if system.Config != nil && system.Config.MetricsProvider != nil {
		mp = system.Config.MetricsProvider
	} else {
		return nil
	}
	if in, ok := instrumentsOf.Load(mp); ok {
		return in.(*instruments)
	}
	in, err := newInstruments(mp.Meter(meterName))
	if err != nil {
		system.Logger().Error("procsup: metrics are off: the instruments could not be made", "error", err)
		return nil
	}
	actual, _ := instrumentsOf.LoadOrStore(mp, in)
	return actual.(*instruments)
}

func newInstruments(m metric.Meter) (*instruments, error) {
	in := &instruments{procs: map[*process]struct{}{}, pools: map[*pool]struct{}{}}
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{"+name[strings.LastIndexByte(name, '.')+1:]+"}"))
		errs = append(errs, err)
		return c
	}
	seconds := func(name, desc string, bounds ...float64) metric.Float64Histogram {
		h, err := m.Float64Histogram(name, metric.WithDescription(desc), metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(bounds...))
		errs = append(errs, err)
		return h
	}
	in.starts = counter("procsup.process.starts", "Processes started.")
	in.exits = counter("procsup.process.exits", "Processes ended, by reason.")
	in.restarts = counter("procsup.process.restarts", "Restarts decided by a supervisor strategy.")
	in.limits = counter("procsup.restart_limit.hits", "Times a supervisor strategy hit its restart limit.")
	in.rollouts = counter("procsup.pool.rollouts", "Rolling replacements' steps: started, done, aborted.")
	in.retirements = counter("procsup.pool.retirements", "Pool processes retired: recycled (uses, age) or by a rolling replacement.")
	in.logsDropped = counter("procsup.process.log_records.dropped", "Child log records that did not reach the parent's logger.")
	in.initDuration = seconds("procsup.process.init.duration", "From start to running.", .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
	in.pingRTT = seconds("procsup.process.ping.rtt", "Ping round trips, on the parent's clock.", .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1)
	in.acquireWait = seconds("procsup.pool.acquire.wait", "Time callers waited in Acquire.", .0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 10, 30)

	states, err := m.Int64ObservableGauge("procsup.processes", metric.WithDescription("Process actors by state."), metric.WithUnit("{process}"))
	errs = append(errs, err)
	memory, err := m.Int64ObservableGauge("procsup.process.memory", metric.WithDescription("A process's last memory sample."), metric.WithUnit("By"))
	errs = append(errs, err)
	cpu, err := m.Float64ObservableCounter("procsup.process.cpu.time", metric.WithDescription("CPU time a process used (with its descendants in a cgroup)."), metric.WithUnit("s"))
	errs = append(errs, err)
	poolProcs, err := m.Int64ObservableGauge("procsup.pool.processes", metric.WithDescription("A pool's processes by state (idle, busy, starting, closing)."), metric.WithUnit("{process}"))
	errs = append(errs, err)
	waiting, err := m.Int64ObservableGauge("procsup.pool.waiting", metric.WithDescription("Callers waiting in Acquire."), metric.WithUnit("{caller}"))
	errs = append(errs, err)
	if err := joinErrs(errs); err != nil {
		return nil, err
	}
	_, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		in.mu.Lock()
		defer in.mu.Unlock()
		byState := map[[2]string]int64{}
		for p := range in.procs {
			name, state := p.metricName, messages.State(p.publicState.Load()).String()
			byState[[2]string{name, state}]++
			at := metric.WithAttributes(attribute.String("name", name))
			r := p.reading.Load()
			if r != nil && r.memory.Bytes > 0 {
				o.ObserveInt64(memory, int64(r.memory.Bytes), at)
			}
			if r != nil && r.cpu > 0 {
				o.ObserveFloat64(cpu, r.cpu.Seconds(), at)
			}
		}
		for k, n := range byState {
			o.ObserveInt64(states, n, metric.WithAttributes(attribute.String("name", k[0]), attribute.String("state", k[1])))
		}
		for p := range in.pools {
			st := p.published.Load()
			if st == nil {
				continue
			}
			name := attribute.String("pool", p.name)
			for state, n := range map[string]int{"idle": st.Idle, "busy": st.Busy, "starting": st.Starting, "closing": st.Closing} {
				o.ObserveInt64(poolProcs, int64(n), metric.WithAttributes(name, attribute.String("state", state)))
			}
			o.ObserveInt64(waiting, int64(st.Waiting), metric.WithAttributes(name))
		}
		return nil
	}, states, memory, cpu, poolProcs, waiting)
	if err != nil {
		return nil, err
	}
	return in, nil
}

func joinErrs(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// nameAttr is the label of a process's or pool's measurements.
func nameAttr(name string) metric.MeasurementOption {
	return metric.WithAttributes(attribute.String("name", name))
}

// metricName is the name a process actor's measurements carry: its spec's name (the
// last part of its id), or for an anonymous actor (a pool's member, "$3") its parent's.
func metricName(id string) string {
	parts := strings.Split(id, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if parts[i] != "" && !strings.HasPrefix(parts[i], "$") {
			return parts[i]
		}
	}
	return "process"
}

// track adds p to the processes the gauges read, or removes it.
func (in *instruments) track(p *process, alive bool) {
	if in != nil {
		keep(&in.mu, in.procs, p, alive)
	}
}

// trackPool adds p to the pools the gauges read, or removes it.
func (in *instruments) trackPool(p *pool, alive bool) {
	if in != nil {
		keep(&in.mu, in.pools, p, alive)
	}
}

// keep adds x to set, or removes it, under mu.
func keep[T comparable](mu *sync.Mutex, set map[T]struct{}, x T, alive bool) {
	mu.Lock()
	defer mu.Unlock()
	if alive {
		set[x] = struct{}{}
	} else {
		delete(set, x)
	}
}

// The recorders below do nothing without a MeterProvider (in is nil).

func (in *instruments) started(name string) {
	if in != nil {
		in.starts.Add(context.Background(), 1, nameAttr(name))
	}
}

func (in *instruments) exited(name string, ev *messages.Exited) {
	if in == nil {
		return
	}
	in.exits.Add(context.Background(), 1, metric.WithAttributes(attribute.String("name", name), attribute.String("reason", ev.Reason.String())))
	if ev.LogsDropped > 0 {
		in.logsDropped.Add(context.Background(), int64(ev.LogsDropped), nameAttr(name))
	}
}

func (in *instruments) ready(name string, d time.Duration) {
	if in != nil {
		in.initDuration.Record(context.Background(), d.Seconds(), nameAttr(name))
	}
}

func (in *instruments) pong(name string, rtt time.Duration) {
	if in != nil {
		in.pingRTT.Record(context.Background(), rtt.Seconds(), nameAttr(name))
	}
}

func (in *instruments) restarted(name string) {
	if in != nil {
		in.restarts.Add(context.Background(), 1, nameAttr(name))
	}
}

func (in *instruments) limitHit(name string) {
	if in != nil {
		in.limits.Add(context.Background(), 1, nameAttr(name))
	}
}

func (in *instruments) waited(pool string, d time.Duration) {
	if in != nil {
		in.acquireWait.Record(context.Background(), d.Seconds(), metric.WithAttributes(attribute.String("pool", pool)))
	}
}

func (in *instruments) rolloutStep(pool string, kind messages.RolloutKind) {
	if in != nil && kind != messages.RolloutProgress {
		in.rollouts.Add(context.Background(), 1, metric.WithAttributes(attribute.String("pool", pool), attribute.String("step", kind.String())))
	}
}

func (in *instruments) retired(pool string, kind messages.PoolEventKind) {
	if in != nil && (kind == messages.PoolRecycled || kind == messages.PoolRetired) {
		in.retirements.Add(context.Background(), 1, metric.WithAttributes(attribute.String("pool", pool), attribute.String("why", kind.String())))
	}
}

// publish mirrors a pool's status for the gauges.
func (p *pool) publish(draining bool) {
	if p.metrics != nil {
		p.published.Store(p.status(draining))
	}
}
