"""What ties the stages together: the params schema, every path, how a stage runs and writes files."""
