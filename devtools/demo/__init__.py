"""./dev demo: a whole month of four sample clients, end to end, on local stand-ins."""
