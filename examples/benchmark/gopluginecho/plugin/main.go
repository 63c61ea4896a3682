// Command plugin is the echo plugin program for hashicorp/go-plugin: over net/rpc, or
// over gRPC when its first argument is "grpc".
package main

import (
	"os"

	"github.com/hashicorp/go-plugin"
	"github.com/procsup/procsup/examples/benchmark/gopluginecho"
)

type echo struct{}

func (echo) Echo(body []byte) ([]byte, error) { return body, nil }

func main() {
	cfg := &plugin.ServeConfig{
		HandshakeConfig: gopluginecho.Handshake,
		Plugins:         map[string]plugin.Plugin{"echo": &gopluginecho.Plugin{Impl: echo{}}},
	}
	if len(os.Args) > 1 && os.Args[1] == "grpc" {
		cfg.Plugins = map[string]plugin.Plugin{"echo": &gopluginecho.GRPCPlugin{Impl: echo{}}}
		cfg.GRPCServer = plugin.DefaultGRPCServer
	}
	plugin.Serve(cfg)
}
