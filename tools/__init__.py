"""Tools run from a source checkout, not installed with the package: benchmark, reproduce."""
