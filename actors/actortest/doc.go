// Package actortest helps test code built on procsup: probe actors that record what they
// receive and let a test wait for it, and leak checks for goroutines, descriptors and
// child processes. It is for procsup's own tests and for its users'.
package actortest
