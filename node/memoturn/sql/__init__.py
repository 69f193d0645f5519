"""User SQL: screened (``guard``), run in a worker process under a deadline (``worker``, ``execute``)."""
