"""TLS, as far as a blind tunnel needs it: reading the ClientHello (sans-IO)."""
