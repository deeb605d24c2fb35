"""Shared fixtures: real redis-server instances and a 3-master Redis Cluster on loopback."""

pytest_plugins = ["tests.redis_servers"]
