"""Reports rendered from run records."""
