"""Several worker processes for one instance: the supervisor and what a worker inherits."""
