// Package messages is the actor vocabulary of procsup: the commands and queries a process
// actor, a tree and a pool take, and the events they send to their parents and publish on
// the actor system's EventStream. The wire protocol between parent and child is package
// [github.com/procsup/procsup/messages/wire].
package messages
