"""Thin triggers: parse the input, call a service from shared/, answer."""
