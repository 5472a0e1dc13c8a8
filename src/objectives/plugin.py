"""Entry-point plugin (components are added as they land)."""
