"""HTTP/1.1, strictly: the sans-IO message core (the proxy that uses it comes later)."""
