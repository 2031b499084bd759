"""Names vulture reports as unused that a framework or the language uses (read by `make lint`).

Each entry names who uses it. Anything else vulture reports is dead: delete it rather than list it here.
"""

# parse_include_object picks the member by its value, from the includeObject query parameter
# (mcs_apiserver/api/negotiation.py).
NONE
# logging calls Formatter.format (mcs_apiserver/logs.py).
_.format
# prometheus_client calls a custom collector's collect() on every scrape (mcs_apiserver/metrics.py).
_.collect
# ssl calls the SNI callback with (ssl_object, server_name, context) (mcs_apiserver/tls.py).
server_name
# The ``<`` operator: the bound of the age type that allocation sorts by (mcs_apiserver/views/ipalloc.py).
__lt__
# pytest reads the module-level marks of a test module (tests/e2e/).
pytestmark
# aiohttp and the logs name a route handler by its __qualname__ (webhooks/handlers.py).
_.__qualname__
# asyncio calls a Protocol's callbacks: connection_made, data_received and flow control (mcs_apiserver/dns/server.py).
_.connection_made
_.data_received
_.pause_writing
_.resume_writing
# OpenSSL reads the number of TLS 1.3 session tickets to send from the SSLContext (mcs_apiserver/tls.py).
_.num_tickets
# aiohttp's StreamReader and Request read these of their protocol, and call its pause/resume with
# resume_parser; its responses set a payload writer's sizes and call its compression and chunking
# switches (mcs_apiserver/api/http2.py: Stream, _Writer).
_._reading_paused
_.peername
_.sockname
resume_parser
_.buffer_size
_.output_size
_.enable_compression
strategy
_.enable_chunking
# h2 reads MAX_CLOSED_STREAMS and local_settings of its connection (mcs_apiserver/api/http2.py).
_.MAX_CLOSED_STREAMS
_.local_settings
