"""In-memory stand-ins for the platform's ports, shipped for the services' unit tests: each
behaves as its real adapter does, as one test body run against both shows."""
