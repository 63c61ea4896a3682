// Command plugin is the echo plugin program for hashicorp/go-plugin (net/rpc).
package main

import (
	"github.com/hashicorp/go-plugin"
	"github.com/procsup/procsup/examples/benchmark/gopluginecho"
)

type echo struct{}

func (echo) Echo(body []byte) ([]byte, error) { return body, nil }

func main() {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: gopluginecho.Handshake,
		Plugins:         map[string]plugin.Plugin{"echo": &gopluginecho.Plugin{Impl: echo{}}},
	})
}
