"""The ``memoturnd`` HTTP/JSON API: :func:`memoturn.api.app.create_app`."""
