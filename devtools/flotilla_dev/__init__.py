"""Flotilla's developer tools: the local stack (``flotilla up``), the dev token issuer and the trace
waterfall. A separate distribution from the chassis, so no production image carries them."""
