"""mitigation.restore."""
