"""Reports and exports: what people read, escaped for the programs they read it in."""
