"""runner bench: the harness, its peers and floors."""
