"""Thin kopf handlers: observe, call a builder or a decision, apply, write status. Each module has a
`register(registry)` that main.py calls; importing a module registers nothing."""
