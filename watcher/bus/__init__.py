"""Message-bus transports that feed the pipeline (NATS JetStream)."""
