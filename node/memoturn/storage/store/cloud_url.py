"""From a store URL to a configured obstore client: the URL's parameters, each cloud's credentials, timeouts and retries.

URLs (query parameters are the only syntax beyond ``scheme://bucket/prefix``; an unknown one is
a :class:`ValueError`)::

    s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&profile=NAME
    gs://bucket/prefix?endpoint=http://127.0.0.1:4443&anonymous=true
    az://container/prefix?account=NAME&endpoint=https://...&key=...&emulator=true

and, on every scheme, ``connect_timeout`` and ``read_timeout`` (seconds: connection set-up and
the longest silence while reading an answer), ``timeout`` (seconds, a whole request) and
``attempts`` (total tries of idempotent requests).

Credentials come from each cloud's standard chain, read by obstore:

* S3: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, web identity
  (IRSA: ``AWS_WEB_IDENTITY_TOKEN_FILE`` + ``AWS_ROLE_ARN``), ECS container credentials, EC2
  instance metadata. A named profile (``profile=`` or ``AWS_PROFILE``), or a shared credentials
  file when nothing in the environment names credentials, goes through boto3's chain instead.
  The endpoint may also come from ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``; with an explicit
  endpoint requests are path-style, as self-hosted servers expect.
* GCS: ``GOOGLE_APPLICATION_CREDENTIALS`` (service-account JSON), ``GOOGLE_SERVICE_ACCOUNT*``,
  else the metadata server (GKE workload identity). The endpoint may come from
  ``STORAGE_EMULATOR_HOST``. With an endpoint and no credentials in the environment, requests
  are unsigned (an emulator); ``anonymous=`` decides explicitly.
* Azure: ``key=``, ``AZURE_STORAGE_CONNECTION_STRING`` (``AccountName``/``AccountKey``/
  ``BlobEndpoint``/``SharedAccessSignature``/``UseDevelopmentStorage``), ``AZURE_STORAGE_*``
  variables, workload identity (``AZURE_FEDERATED_TOKEN_FILE`` + client and tenant id),
  managed identity. ``emulator=true`` is Azurite with its well-known account.
"""

from __future__ import annotations

import os
import urllib.parse
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from obstore.store import AzureStore, GCSStore, S3Store

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig
    from obstore.store import ObjectStore as ObstoreStore


def valid_path(path: str) -> bool:
    """No empty, ``.`` or ``..`` segment: what obstore accepts as a path."""
    return all(p not in ("", ".", "..") for p in path.split("/"))


# The emulator account of Azurite (public, documented constants).
_AZURITE_ACCOUNT = "devstoreaccount1"
_AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

_COMMON_PARAMS = {"connect_timeout", "read_timeout", "timeout", "attempts"}
_PARAMS = {
    "s3": _COMMON_PARAMS | {"endpoint", "region", "profile"},
    "gs": _COMMON_PARAMS | {"endpoint", "anonymous"},
    "az": _COMMON_PARAMS | {"account", "endpoint", "key", "emulator"},
}


def _seconds(value: str, name: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"store URL parameter {name}={value!r} is not a number of seconds") from None
    if not seconds > 0:
        raise ValueError(f"store URL parameter {name}={value!r} must be positive")
    return seconds


def _flag(value: str, name: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"store URL parameter {name}={value!r} is not a boolean")


def obstore_for(url: str) -> ObstoreStore:
    """A configured obstore client for ``url`` (a :class:`ValueError` says what is wrong with it)."""
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme
    if scheme == "file":
        raise ValueError(
            f"{url!r}: obstore's local store cannot replace conditionally; use the file store (file:///path)"
        )
    if scheme not in _PARAMS:
        raise ValueError(f"unsupported cloud store URL {url!r}: use s3://, gs:// or az://bucket/prefix")
    if not parsed.netloc:
        raise ValueError(f"cloud store URL needs a bucket: {scheme}://bucket/prefix, got {url!r}")
    if parsed.fragment:
        raise ValueError(f"cloud store URL may not have a #fragment: {url!r}")
    pairs = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True, strict_parsing=False)
    query: dict[str, str] = {}
    for name, value in pairs:
        if name in query:
            raise ValueError(f"store URL parameter {name!r} given twice in {url!r}")
        query[name] = value
    if unknown := set(query) - _PARAMS[scheme]:
        raise ValueError(
            f"unknown {scheme}:// store URL parameter(s) {sorted(unknown)}; known: {sorted(_PARAMS[scheme])}"
        )
    bucket = parsed.netloc
    prefix = urllib.parse.unquote(parsed.path).strip("/")
    if prefix and not valid_path(prefix):
        raise ValueError(f"invalid prefix {prefix!r} in {url!r}")

    attempts_text = query.get("attempts", "2")
    try:
        attempts = int(attempts_text)
    except ValueError:
        raise ValueError(f"store URL parameter attempts={attempts_text!r} is not an integer") from None
    if attempts < 1:
        raise ValueError(f"store URL parameter attempts={attempts} must be at least 1")
    client: ClientConfig = {
        "connect_timeout": timedelta(seconds=_seconds(query.get("connect_timeout", "2"), "connect_timeout")),
        "read_timeout": timedelta(seconds=_seconds(query.get("read_timeout", "10"), "read_timeout")),
        "timeout": timedelta(seconds=_seconds(query.get("timeout", "120"), "timeout")),
        "pool_idle_timeout": timedelta(seconds=50),
    }
    retry: RetryConfig = {
        "max_retries": attempts - 1,
        "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
        "retry_timeout": timedelta(seconds=30),
    }
    endpoint = query.get("endpoint")
    if endpoint is not None:
        endpoint_scheme = urllib.parse.urlsplit(endpoint).scheme
        if endpoint_scheme not in ("http", "https"):
            raise ValueError(f"endpoint must be an http:// or https:// URL, got {endpoint!r}")

    store: ObstoreStore
    if scheme == "s3":
        store = _s3(bucket, prefix, query, client, retry)
    elif scheme == "gs":
        store = _gcs(bucket, prefix, query, client, retry)
    else:
        store = _azure(bucket, prefix, query, client, retry)
    return store


def without_retries(store: ObstoreStore) -> ObstoreStore:
    """The same store with HTTP retries off, for conditional PUTs."""
    if isinstance(store, (S3Store, GCSStore, AzureStore)):
        retry: RetryConfig = dict(store.retry_config or {})  # type: ignore[assignment]  # a copy of the TypedDict it came from
        retry["max_retries"] = 0
        cls: Any = type(store)
        rebuilt: ObstoreStore = cls(
            prefix=store.prefix,
            config=store.config,
            client_options=store.client_options,
            retry_config=retry,
            credential_provider=store.credential_provider,
        )
        return rebuilt
    return store  # local and in-memory stores do not retry


def _allow_http(client: ClientConfig, endpoint: str | None) -> ClientConfig:
    if endpoint is not None and endpoint.startswith("http://"):
        return {**client, "allow_http": True}
    return client


def _s3(bucket: str, prefix: str, query: dict[str, str], client: ClientConfig, retry: RetryConfig) -> ObstoreStore:
    endpoint = query.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config: dict[str, Any] = {"conditional_put": "etag"}
    region = query.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    config["region"] = region or "us-east-1"
    if endpoint:
        config["endpoint"] = endpoint.rstrip("/")
        config["virtual_hosted_style_request"] = False
    elif "." not in bucket:
        config["virtual_hosted_style_request"] = True
    provider = None
    profile = query.get("profile") or os.environ.get("AWS_PROFILE")
    env_credentials = any(
        os.environ.get(name)
        for name in (
            "AWS_ACCESS_KEY_ID",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        )
    )
    shared_file = os.path.exists(
        os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or os.path.expanduser("~/.aws/credentials")
    )
    if query.get("profile") or (not env_credentials and (profile or shared_file)):
        # Profiles (SSO, credential_process, assume-role chains) are boto3's business.
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider

        provider = Boto3CredentialProvider(boto3.Session(profile_name=profile, region_name=config["region"]))
    return S3Store(
        bucket,
        prefix=prefix or None,
        config=config,  # type: ignore[arg-type]  # built key by key from the URL; obstore checks it
        client_options=_allow_http(client, endpoint),
        retry_config=retry,
        credential_provider=provider,
    )


def _gcs(bucket: str, prefix: str, query: dict[str, str], client: ClientConfig, retry: RetryConfig) -> ObstoreStore:
    endpoint = query.get("endpoint")
    if endpoint is None and (emulator := os.environ.get("STORAGE_EMULATOR_HOST")):
        endpoint = emulator if "://" in emulator else "http://" + emulator
    config: dict[str, Any] = {}
    if endpoint:
        config["base_url"] = endpoint.rstrip("/")
    if "anonymous" in query:
        anonymous = _flag(query["anonymous"], "anonymous")
    else:
        credentials_in_env = any(
            os.environ.get(name)
            for name in (
                "GOOGLE_APPLICATION_CREDENTIALS",
                "GOOGLE_SERVICE_ACCOUNT",
                "GOOGLE_SERVICE_ACCOUNT_PATH",
                "GOOGLE_SERVICE_ACCOUNT_KEY",
                "GOOGLE_BEARER_TOKEN",
            )
        )
        anonymous = bool(endpoint) and not credentials_in_env
    if anonymous:
        config["skip_signature"] = True
    return GCSStore(
        bucket,
        prefix=prefix or None,
        config=config,  # type: ignore[arg-type]  # built key by key from the URL; obstore checks it
        client_options=_allow_http(client, endpoint),
        retry_config=retry,
    )


def _connection_string() -> dict[str, str]:
    text = os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    parts: dict[str, str] = {}
    for item in text.split(";"):
        name, sep, value = item.strip().partition("=")
        if sep:
            parts[name.strip()] = value.strip()
    return parts


def _azure(
    container: str, prefix: str, query: dict[str, str], client: ClientConfig, retry: RetryConfig
) -> ObstoreStore:
    conn = _connection_string()
    emulator = _flag(query["emulator"], "emulator") if "emulator" in query else False
    emulator = emulator or conn.get("UseDevelopmentStorage", "").lower() == "true"
    account = query.get("account") or conn.get("AccountName")
    endpoint = query.get("endpoint") or conn.get("BlobEndpoint")
    key = query.get("key") or conn.get("AccountKey")
    config: dict[str, Any] = {}
    if emulator:
        account = account or _AZURITE_ACCOUNT
        key = key or (_AZURITE_KEY if account == _AZURITE_ACCOUNT else None)
        if endpoint is None:
            endpoint = os.environ.get("AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:10000").rstrip("/") + "/" + account
    elif account is None and not os.environ.get("AZURE_STORAGE_ACCOUNT_NAME"):
        raise ValueError("Azure store needs an account: az://container/prefix?account=NAME (or AZURE_STORAGE_*)")
    if account:
        config["account_name"] = account
    if key:
        config["account_key"] = key
    if endpoint:
        config["endpoint"] = endpoint.rstrip("/")
    if sas := conn.get("SharedAccessSignature"):
        config["sas_key"] = sas
    return AzureStore(
        container,
        prefix=prefix or None,
        config=config,  # type: ignore[arg-type]  # built key by key from the URL; obstore checks it
        client_options=_allow_http(client, endpoint),
        retry_config=retry,
    )


#: Query parameters whose values are secrets.
SECRET_PARAMS = frozenset({"key"})


def redact(url: str) -> str:
    """``url`` with secret parameter values (an Azure ``key=``) replaced, for logs and messages."""
    parsed = urllib.parse.urlsplit(url)
    if not parsed.query:
        return url
    pairs = urllib.parse.parse_qsl(parsed.query, keep_blank_values=True)
    query = urllib.parse.urlencode([(k, "***" if k in SECRET_PARAMS else v) for k, v in pairs], safe="*:/")
    return urllib.parse.urlunsplit(parsed._replace(query=query))
