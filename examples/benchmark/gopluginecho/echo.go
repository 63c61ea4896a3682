// Package gopluginecho is an echo plugin for hashicorp/go-plugin, over net/rpc and gRPC: the
// interface, its RPC client and server, and the handshake, shared by the plugin program
// (gopluginecho/plugin) and the benchmark that starts it.
package gopluginecho

import (
	"net/rpc"

	"github.com/hashicorp/go-plugin"
)

// Echo answers a body with the same body.
type Echo interface {
	Echo(body []byte) ([]byte, error)
}

// Handshake is the plugin's handshake.
var Handshake = plugin.HandshakeConfig{ProtocolVersion: 1, MagicCookieKey: "PROCSUP_BENCH_PLUGIN", MagicCookieValue: "echo"}

// Plugin is the go-plugin Plugin of Echo over net/rpc.
type Plugin struct{ Impl Echo }

// Server implements plugin.Plugin.
func (p *Plugin) Server(*plugin.MuxBroker) (any, error) { return &server{impl: p.Impl}, nil }

// Client implements plugin.Plugin.
func (*Plugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (any, error) { return &client{c: c}, nil }

type client struct{ c *rpc.Client }

func (e *client) Echo(body []byte) ([]byte, error) {
	var out []byte
	err := e.c.Call("Plugin.Echo", body, &out)
	return out, err
}

type server struct{ impl Echo }

// Echo is the RPC method.
func (s *server) Echo(body []byte, out *[]byte) error {
	b, err := s.impl.Echo(body)
	*out = b
	return err
}
