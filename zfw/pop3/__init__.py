"""POP3 (RFC 1939, RFC 2449), sans-IO: command and reply lines, and which replies
run on to a terminating dot."""
