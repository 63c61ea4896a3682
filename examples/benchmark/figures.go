package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/procsup/procsup/actors"
	"github.com/procsup/procsup/messages/wire"
)

var body16 = []byte("0123456789abcdef")

// startKill starts a child of each side in turn, asks it once and SIGKILLs it, then
// does the same ending it gracefully: rounds times, interleaved. It returns, by side,
// the times to ready, from SIGKILL to ended, and from the close to ended.
func startKill(sides []side, rounds int) (up, kill, closing [][]time.Duration, err error) {
	up, kill, closing = make([][]time.Duration, len(sides)), make([][]time.Duration, len(sides)), make([][]time.Duration, len(sides))
	for range rounds {
		for i, s := range sides {
			for j, end := range []func(child) error{child.kill, child.close} {
				began := time.Now()
				c, err := s.start()
				if err != nil {
					return nil, nil, nil, fmt.Errorf("%s: start: %w", s.name(), err)
				}
				up[i] = append(up[i], time.Since(began))
				if err := c.ask(body16); err != nil {
					return nil, nil, nil, fmt.Errorf("%s: ask: %w", s.name(), err)
				}
				began = time.Now()
				if err := end(c); err != nil {
					return nil, nil, nil, fmt.Errorf("%s: end: %w", s.name(), err)
				}
				if j == 0 {
					kill[i] = append(kill[i], time.Since(began))
				} else {
					closing[i] = append(closing[i], time.Since(began))
				}
			}
		}
	}
	return up, kill, closing, nil
}

// roundTripBlock is how many round trips a side makes back to back before the next side
// has its turn: sequential requests, as a caller makes them, with every side seeing the
// same machine over the run.
const roundTripBlock = 100

// roundTripPasses is how many passes the round trips are split into, each with
// children of its own. A pass's figures depend on the moment and on where its children
// run (the floor's round trip has a fast mode, about 25–30 µs here, that comes and goes
// from pass to pass), so the medians are over all the passes.
const roundTripPasses = 4

// roundTrips makes n sequential 16-byte round trips to a child of each side, in
// roundTripPasses passes interleaved in blocks, and returns their times by side.
func roundTrips(sides []side, n int) ([][]time.Duration, error) {
	t := make([][]time.Duration, len(sides))
	for pass := range roundTripPasses {
		per := n / roundTripPasses
		if pass < n%roundTripPasses {
			per++
		}
		if err := roundTripPass(sides, per, t); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// roundTripPass starts a child of each side, makes n sequential round trips to each,
// interleaved in blocks, appends their times to t by side, and closes the children.
func roundTripPass(sides []side, n int, t [][]time.Duration) error {
	kids := make([]child, len(sides))
	defer func() {
		for _, c := range kids {
			if c != nil {
				c.close()
			}
		}
	}()
	for i, s := range sides {
		c, err := s.start()
		if err != nil {
			return fmt.Errorf("%s: start: %w", s.name(), err)
		}
		kids[i] = c
	}
	for done := 0; done < n; done += roundTripBlock {
		for i, c := range kids {
			for range min(roundTripBlock, n-done) {
				began := time.Now()
				if err := c.ask(body16); err != nil {
					return fmt.Errorf("%s: ask: %w", sides[i].name(), err)
				}
				t[i] = append(t[i], time.Since(began))
			}
		}
	}
	return nil
}

// cycles runs workers goroutines that each start a child, wait until it is ready and
// SIGKILL it, over and over for d, and returns the cycles per second. Each side runs
// rounds times, interleaved; the result is the median round.
func cycles(sides []side, workers, rounds int, d time.Duration) ([][]float64, error) {
	rates := make([][]float64, len(sides))
	for range rounds {
		for i, s := range sides {
			var done atomic.Int64
			var failed atomic.Value
			end := time.Now().Add(d)
			began := time.Now()
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for time.Now().Before(end) {
						c, err := s.start()
						if err == nil {
							err = c.kill()
						}
						if err != nil {
							failed.Store(err)
							return
						}
						done.Add(1)
					}
				})
			}
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				return nil, fmt.Errorf("%s: %w", s.name(), err)
			}
			rates[i] = append(rates[i], float64(done.Load())/time.Since(began).Seconds())
		}
	}
	return rates, nil
}

// startMany starts n children of a side, four at a time.
func startMany(s side, n int) ([]child, error) {
	kids := make([]child, n)
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				c, err := s.start()
				if err != nil {
					failed.Store(err)
					return
				}
				kids[i] = c
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		closeAll(kids)
		return nil, fmt.Errorf("%s: start: %w", s.name(), err)
	}
	return kids, nil
}

func closeAll(kids []child) {
	var wg sync.WaitGroup
	for _, c := range kids {
		if c != nil {
			wg.Go(func() { c.close() })
		}
	}
	wg.Wait()
}

func pidsOf(kids []child) []int {
	pids := make([]int, len(kids))
	for i, c := range kids {
		pids[i] = c.osPid()
	}
	return pids
}

// load is what a fleet of children cost while they worked or idled.
type load struct {
	rtt, p99       time.Duration // median and 99th percentile round trip (asked fleets)
	unsent         int           // asks not sent within their interval (asked fleets)
	unsentLater    int           // of those, the asks due after the first second
	parent, kids   float64       // CPU, % of one core
	system         float64       // the machine's busy CPU, % of one core
	rss, uss       uint64        // median child RSS and USS, bytes
	parentPerChild float64       // parent heap and stacks per child, bytes
	// After an idle fleet (not the floor's): the children's CPU per ask when each is
	// asked once, one after another (their first request since they started), and
	// again a second later.
	firstAsk, secondAsk time.Duration
}

// fleet starts n children of a side and, for hold, asks each one every interval (0:
// never; the floor then pings each one at procsup's default ping interval, as an idle
// procsup child is pinged). The asks of the children are spread evenly over the
// interval; an ask whose time came a whole interval before the last one returned is
// counted unsent and skipped, and counted apart when it was due after the first second
// (the first asks reach children that have idled since they started). A heapProfile is
// written while an idle fleet of procsup's is held; a runtime trace of an asked fleet
// while it is asked, to tracePath with the side's name appended (its cost is in that
// run's figures).
func fleet(s side, n int, every, hold time.Duration, heapProfile, tracePath string) (load, error) {
	before := heapAndStacks()
	kids, err := startMany(s, n)
	if err != nil {
		return load{}, err
	}
	defer closeAll(kids)
	if _, ok := s.(floorSide); ok && every == 0 {
		defer floorPings(kids)()
	}
	var l load
	held := heapAndStacks()
	l.parentPerChild = float64(held-min(before, held)) / float64(n)
	if heapProfile != "" && every == 0 && s.name() == "procsup" {
		if err := writeHeapProfile(heapProfile); err != nil {
			return load{}, err
		}
	}
	pids := pidsOf(kids)
	time.Sleep(time.Second) // the starts' own work done

	rtts := make([][]time.Duration, n)
	var unsent, unsentLater atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	// The children's CPU is read first, so that reading every thread's schedstat of
	// hundreds of children does not overlap the first asks.
	kids0, self0, sys0, t0 := cpuOf(pids), selfCPU(), systemBusy(), time.Now()
	began := t0.Add(every)
	end := began.Add(hold)
	if tracePath != "" && every > 0 {
		stop, err := startTrace(tracePath + "." + slug(s.name()))
		if err != nil {
			return load{}, err
		}
		defer stop()
	}
	if every > 0 {
		for i, c := range kids {
			offset := every * time.Duration(i) / time.Duration(n)
			wg.Go(func() {
				for slot := time.Duration(0); ; slot++ {
					at := began.Add(offset + slot*every)
					if at.After(end) {
						return
					}
					time.Sleep(time.Until(at))
					if time.Since(at) >= every {
						unsent.Add(1)
						if at.Sub(began) >= time.Second {
							unsentLater.Add(1)
						}
						continue
					}
					t := time.Now()
					if err := c.ask(body16); err != nil {
						failed.Store(err)
						return
					}
					rtts[i] = append(rtts[i], time.Since(t))
				}
			})
		}
		wg.Wait()
	} else {
		time.Sleep(hold)
	}
	wall := time.Since(t0).Seconds()
	l.parent = 100 * (selfCPU() - self0).Seconds() / wall
	l.kids = 100 * (cpuOf(pids) - kids0).Seconds() / wall
	l.system = 100 * (systemBusy() - sys0).Seconds() / wall
	if err, _ := failed.Load().(error); err != nil {
		return load{}, fmt.Errorf("%s: ask: %w", s.name(), err)
	}
	l.unsent, l.unsentLater = int(unsent.Load()), int(unsentLater.Load())
	if every > 0 {
		all := slices.Concat(rtts...)
		slices.Sort(all)
		l.rtt, l.p99 = all[len(all)/2], all[len(all)*99/100]
	}
	rss, uss := make([]uint64, n), make([]uint64, n)
	for i, pid := range pids {
		rss[i], uss[i] = rssOf(pid), ussOf(pid)
	}
	slices.Sort(rss)
	slices.Sort(uss)
	l.rss, l.uss = rss[n/2], uss[n/2]
	if _, floor := s.(floorSide); every == 0 && !floor {
		if l.firstAsk, l.secondAsk, err = askedTwice(kids, pids); err != nil {
			return load{}, fmt.Errorf("%s: ask: %w", s.name(), err)
		}
	}
	return l, nil
}

// askedTwice asks each of the idle children once, one after another, and again a
// second later, and returns the children's CPU per ask in each round: the first round
// is each child's first request since it started, so it shows what a side's first
// request to a child costs beyond the later ones. Not for the floor, whose pings' reader
// goroutines own its sockets, and whose start is an echo: its children have run their
// request path before any ask.
func askedTwice(kids []child, pids []int) (first, second time.Duration, err error) {
	round := func() (time.Duration, error) {
		before := cpuOf(pids)
		for _, c := range kids {
			if err := c.ask(body16); err != nil {
				return 0, err
			}
		}
		return (cpuOf(pids) - before) / time.Duration(len(kids)), nil
	}
	if first, err = round(); err != nil {
		return 0, 0, err
	}
	time.Sleep(time.Second)
	second, err = round()
	return first, second, err
}

// startTrace starts a runtime trace of this process into the file at path.
func startTrace(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := trace.Start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		trace.Stop()
		f.Close()
	}, nil
}

// slug is a side's name as a file name's part: "floor (raw socket)" is
// "floor-raw-socket".
func slug(name string) string {
	return strings.Join(strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}), "-")
}

// floorPings pings every floor child at procsup's default ping interval, as procsup
// pings an idle child, and reads the pongs; it returns a func that stops the pinger.
// The readers end when the children are closed.
func floorPings(kids []child) (stop func()) {
	ping, _ := wire.Encode(&wire.PingRequest{SentAt: 1})
	for _, c := range kids {
		go func() {
			buf := make([]byte, 64)
			for {
				if _, err := c.(*floorChild).conn.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(actors.DefaultPingInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				for _, c := range kids {
					c.(*floorChild).conn.Write(ping)
				}
			case <-quit:
				return
			}
		}
	}()
	return func() { close(quit); <-done }
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
