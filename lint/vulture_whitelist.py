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
