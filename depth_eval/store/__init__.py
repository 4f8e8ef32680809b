"""What is kept between runs: the SQLite results store (keys, schema, database) and the user's
cache of derived files."""
