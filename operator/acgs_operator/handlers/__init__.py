"""Thin kopf handlers: parse, build, apply, write status. Importing a module registers its handlers."""
