"""Local development tools: the CLI behind ./dev, the development Functions host, the Graph
simulator and the Azurite launcher. Production code (function_app.py, functions/, shared/)
never imports this package."""
