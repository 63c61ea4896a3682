package monitor

import "time"

// Defaults of the memory policy.
const (
	DefaultWarnCooldown = 120 * time.Second
	DefaultRepeatGrowth = 50 << 20 // bytes
)

// Policy decides, sample by sample, whether memory is worth a warning or over the limit.
// A zero WarnBytes or LimitBytes turns that check off.
type Policy struct {
	WarnBytes  uint64
	LimitBytes uint64
	// Cooldown is the least time between two warnings ([DefaultWarnCooldown] when 0)...
	Cooldown time.Duration
	// ...unless memory grew by RepeatGrowth bytes since the last warning
	// ([DefaultRepeatGrowth] when 0).
	RepeatGrowth uint64
}

// Decision is what a policy says of a sample.
type Decision int

const (
	// Quiet: nothing to report.
	Quiet Decision = iota
	// Warn: above the warning level, and not warned recently (or memory grew since).
	Warn
	// OverLimit: above the limit; the process should be killed.
	OverLimit
)

// String implements fmt.Stringer.
func (d Decision) String() string {
	switch d {
	case Warn:
		return "warn"
	case OverLimit:
		return "over limit"
	}
	return "quiet"
}

// State is what the policy remembers between samples of one process. Its zero value is
// ready to use.
type State struct {
	Baseline      uint64    // the first sample's bytes
	Samples       int       // how many samples were decided
	LastWarnAt    time.Time // zero until the first warning
	LastWarnBytes uint64
}

// Growth returns how much b is above the baseline (0 when below).
func (st *State) Growth(b uint64) uint64 {
	if b > st.Baseline {
		return b - st.Baseline
	}
	return 0
}

// Decide looks at s, taken at now, updates st and says what to report.
func (p Policy) Decide(st *State, s Sample, now time.Time) Decision {
	if st.Samples == 0 {
		st.Baseline = s.Bytes
	}
	st.Samples++
	if p.LimitBytes > 0 && s.Bytes > p.LimitBytes {
		return OverLimit
	}
	if p.WarnBytes == 0 || s.Bytes <= p.WarnBytes {
		return Quiet
	}
	cooldown, growth := p.Cooldown, p.RepeatGrowth
	if cooldown <= 0 {
		cooldown = DefaultWarnCooldown
	}
	if growth == 0 {
		growth = DefaultRepeatGrowth
	}
	if !st.LastWarnAt.IsZero() && now.Sub(st.LastWarnAt) < cooldown && s.Bytes < st.LastWarnBytes+growth {
		return Quiet
	}
	st.LastWarnAt, st.LastWarnBytes = now, s.Bytes
	return Warn
}
