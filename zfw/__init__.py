"""zfw: an application-level transparent proxy firewall on Twisted."""

__version__ = "0.1.0"
