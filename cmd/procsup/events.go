package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/procsup/procsup/actors/httpstatus"
)

func events(ctx context.Context, c *client, args []string, out, errOut io.Writer) error {
	fs := flag.NewFlagSet("events", flag.ContinueOnError)
	fs.SetOutput(errOut)
	follow := fs.Bool("f", false, "then follow the events as they happen, until interrupted")
	since := fs.Uint64("since", 0, "only the events after this seq")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	var got httpstatus.Events
	if err := c.get(ctx, "events", url.Values{"since": {strconv.FormatUint(*since, 10)}}, &got); err != nil {
		return err
	}
	if got.Lost {
		fmt.Fprintln(out, "(older events are no longer kept)")
	}
	for i := range got.Events {
		printEvent(out, &got.Events[i])
	}
	if !*follow {
		return nil
	}
	return followEvents(ctx, c, got.Next, out)
}

func printEvent(out io.Writer, e *httpstatus.Event) {
	mark := " "
	if e.Failure {
		mark = "!"
	}
	fmt.Fprintf(out, "%s %s %-14s %s\n", e.Time.Local().Format(time.TimeOnly), mark, e.Type, e.Text)
}

// followEvents reads the live feed from after seq and prints each event until ctx ends
// or the handler closes the feed.
func followEvents(ctx context.Context, c *client, seq uint64, out io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("events/live", url.Values{"since": {strconv.FormatUint(seq, 10)}}), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET events/live: %s", res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	kind := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if kind == "lost" {
				fmt.Fprintln(out, "(events were lost: the handler keeps only the latest)")
				continue
			}
			var e httpstatus.Event
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e); err != nil {
				return fmt.Errorf("the feed sent an event that does not decode: %v", err)
			}
			printEvent(out, &e)
		case line == "":
			kind = ""
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("the handler ended the feed")
}

func act(ctx context.Context, c *client, action, name string, out io.Writer) error {
	a, err := c.act(ctx, action, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s: %s", action, a.Target, a.Done)
	if a.OSPid != 0 {
		fmt.Fprintf(out, " (pid %d)", a.OSPid)
	}
	fmt.Fprintln(out)
	return nil
}
