"""The client's resources, one module per API family."""
