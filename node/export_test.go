package node

// WithSchema returns cfg for a node that speaks another schema version of the node
// protocol: a test of refusal.
func WithSchema(cfg Config, v int) Config {
	cfg.schema = v
	return cfg
}
