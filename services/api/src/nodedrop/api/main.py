"""``nodedrop-api``: the API on NODEDROP_HOST:NODEDROP_PORT."""

from __future__ import annotations

import uvicorn

from nodedrop.api.app import create_app
from nodedrop.contracts.config import Config
from nodedrop.contracts.logsetup import configure_logging
from nodedrop.contracts.tracing import setup_tracing


def main() -> None:
    configure_logging()
    config = Config.load()
    setup_tracing("api", config.otel_exporter)
    # No access log: a line per request cost ~3% of the api's CPU at load (docs/benchmarks.md);
    # failures are logged by the error handlers.
    uvicorn.run(
        create_app(config),
        host=config.host,
        port=config.port,
        log_level="info",
        access_log=False,
        log_config=None,  # uvicorn's lines go through the service's own (redacted) format
    )


if __name__ == "__main__":
    main()
