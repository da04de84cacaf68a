"""debias."""
