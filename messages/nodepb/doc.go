// Package nodepb is the protocol between procsup nodes (package node): protobuf messages
// that a remote process's proxy, a node's agent and a worker's host send each other over
// protoactor's remote. The schema is node.proto; the Go code is generated from it and
// committed, so building needs no protoc.
//
// To regenerate it, with Debian's protobuf-compiler (apt-get install protobuf-compiler)
// and protoc-gen-go at the version of google.golang.org/protobuf in go.mod:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go generate ./messages/nodepb
//
// A change an older node cannot read takes a new package (procsup.node.v2) and a new
// [SchemaVersion]. Nodes publish their schema version in membership and refuse a peer
// whose version differs, before anything of this package is sent: protoactor's remote
// crashes a node that receives a message type it lacks.
package nodepb

//go:generate sh -c "protoc -I../.. -I$(go list -m -f '{{.Dir}}' github.com/asynkron/protoactor-go)/actor --go_out=../.. --go_opt=paths=source_relative --go_opt=Mactor.proto=github.com/asynkron/protoactor-go/actor messages/nodepb/node.proto"

// SchemaVersion is the version of this package's schema, procsup.node.v1.
const SchemaVersion = 1
