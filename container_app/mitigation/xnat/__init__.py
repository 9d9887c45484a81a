"""mitigation.xnat."""
