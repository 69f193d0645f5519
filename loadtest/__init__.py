"""Load tests: a Locust locustfile of agent-memory traffic and a runner that starts a local cluster."""
