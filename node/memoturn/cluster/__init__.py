"""Many nodes as one service: writer leases in etcd, placement, read replicas, the gateway."""
