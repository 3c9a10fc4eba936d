"""Pure builders: spec in, child manifests (dicts) out. Builders never call the API."""
