package node

// WithSchema returns cfg for a node that speaks another schema version of the node
// protocol: a test of refusal.
func WithSchema(cfg Config, v int) Config {
	cfg.schema = v
	return cfg
}

// Publish makes n publish its metadata in membership now.
func Publish(n *Node) {
	select {
	case n.publish <- struct{}{}:
	default:
	}
}
