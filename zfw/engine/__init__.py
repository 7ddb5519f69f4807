"""The session engine: accept, decide by zone and service, route, hand to a proxy."""
