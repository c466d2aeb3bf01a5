"""What to run: parameters, specs, grids, samples, data, the typed plan."""
