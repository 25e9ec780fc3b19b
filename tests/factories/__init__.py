"""factory-boy factories for the core model; every generated identifier is valid."""
