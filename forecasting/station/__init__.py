"""Station input: the schema of a station's files, the stations of a network, reading CSV
files, validating rows, and the synthetic station feed."""
