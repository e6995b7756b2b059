"""Plain torch.nn networks: no Lightning, no config reading; each usable alone."""
