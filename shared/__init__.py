"""Prorata's own package: the pure billing core and the adapters around it."""
