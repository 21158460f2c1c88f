"""Throwaway Postgres, Redis and moto servers for the test suite, in containers or local processes."""
