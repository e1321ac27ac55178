"""Service callables for tests: ``--service tests.services.MODULE:answer``."""
