"""``nodedrop-api``: the API on NODEDROP_HOST:NODEDROP_PORT."""

from __future__ import annotations

import gc

import uvicorn

from nodedrop.api.app import create_app
from nodedrop.api.settings import ApiSettings
from nodedrop.platform.logsetup import configure_logging
from nodedrop.platform.tracing import setup_tracing


def main() -> None:
    config = ApiSettings.load()
    configure_logging(fmt=config.log_format)
    setup_tracing("api", config.otel_exporter)
    app = create_app(config)
    # What is loaded by now (modules, routes, models: ~130,000 objects) lives as long as the
    # process: frozen, it is left out of every full garbage collection. A full collection holds
    # the GIL throughout, and checking a 2,000-node definition sets off several: frozen, they
    # take about half as long, and so do the stalls of other requests (docs/security.md).
    gc.collect()
    gc.freeze()
    # No access log: a line per request cost ~3% of the api's CPU at load (docs/benchmarks.md);
    # failures are logged by the error handlers.
    uvicorn.run(
        app,
        host=config.host,
        port=config.port,
        log_level="info",
        access_log=False,
        log_config=None,  # uvicorn's lines go through the service's own (redacted) format
    )


if __name__ == "__main__":
    main()
