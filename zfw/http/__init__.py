"""HTTP/1.1, strictly, sans-IO: :mod:`.parser` (bytes in, events out), :mod:`.messages`
(what it gives), :mod:`.serialize` (heads and framing on the way out), :mod:`.targets`
(Host values, absolute URLs, CONNECT authorities); :mod:`.policy` and :mod:`.errorpage`
for the proxy that uses them (:mod:`zfw.proxy.http`)."""
