"""./dev demo: a whole month of three sample clients, end to end, on local stand-ins."""
