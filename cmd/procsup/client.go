package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/procsup/procsup/actors/httpstatus"
	"github.com/procsup/procsup/messages"
)

// maxAnswer bounds what the client reads of an answer (a snapshot of thousands of
// processes fits many times over).
const maxAnswer = 64 << 20

// client talks to one status handler.
type client struct {
	base  *url.URL
	token string
	http  *http.Client
}

func newClient(addr, token string) (*client, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("-addr %q is not a URL", addr)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return &client{base: u, token: token, http: &http.Client{}}, nil
}

// url is the handler's route at path (relative, no leading slash) with the query q.
func (c *client) url(path string, q url.Values) string {
	u := c.base.JoinPath(path)
	u.RawQuery = q.Encode()
	return u.String()
}

// get decodes the JSON answer of GET path into v.
func (c *client) get(ctx context.Context, path string, q url.Values, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(path, q), nil)
	if err != nil {
		return err
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", path, res.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: the answer does not decode: %v", path, err)
	}
	return nil
}

func (c *client) snapshot(ctx context.Context) (*messages.Snapshot, error) {
	var s messages.Snapshot
	return &s, c.get(ctx, "status", nil, &s)
}

// act posts an action and returns the handler's answer.
func (c *client) act(ctx context.Context, action, name string) (*httpstatus.Acted, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("control/"+action, url.Values{"name": {name}}), nil)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("X-Procsup-User", os.Getenv("USER"))
	res, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var a httpstatus.Acted
	body, err := io.ReadAll(io.LimitReader(res.Body, maxAnswer))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("%s %s: %s: %s", action, name, res.Status, strings.TrimSpace(string(body)))
	}
	if res.StatusCode >= 300 {
		return &a, fmt.Errorf("%s %s: %s: %s", action, name, res.Status, a.Error)
	}
	return &a, nil
}
