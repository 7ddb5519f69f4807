"""Protocol proxies. Each class here can be named by a policy's ``Service``."""
