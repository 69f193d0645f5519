"""The ``memoturnd`` HTTP/JSON API: :func:`memoturn.server.api.app.create_app`."""
