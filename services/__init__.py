"""The reference application's services: one package each, all built the same way on the chassis."""
