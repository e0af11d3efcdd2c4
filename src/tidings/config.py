"""Configuration from `TIDINGS_*` environment variables (documented in the README)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}

# The shortest TIDINGS_SECRET_KEY `serve` and `worker` start with: the key signs session
# cookies, and a short one can be guessed offline from any cookie (generated keys are 64).
MIN_SECRET_KEY_BYTES = 32


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in _TRUE


def _names(raw: str) -> frozenset[str] | None:
    """A comma-separated list; empty or `all` means no restriction."""
    names = frozenset(n.strip() for n in raw.split(",") if n.strip())
    return None if not names or names == {"all"} else names


@dataclass(frozen=True)
class Settings:
    database_url: str
    data_dir: Path
    redis_url: str | None
    secret_key: str
    public_url: str
    sandbox: bool
    host: str
    port: int
    run_workers: bool
    log_level: str
    # Which worker loops this process runs (`TIDINGS_WORKERS`, names as in
    # `workers.registry.WORKERS`): None runs them all. A dedicated sending process:
    # `TIDINGS_WORKERS=delivery`.
    workers: frozenset[str] | None = None
    # Destinations URLs from outside may reach despite the egress policy (`TIDINGS_EGRESS_ALLOW`,
    # see tidings/egress.py): host names, IPs or CIDRs, each optionally with `:port`.
    egress_allow: tuple[str, ...] = ()
    # Largest JSON request body the API reads (`TIDINGS_MAX_JSON_BYTES`; uploads have their own).
    max_json_bytes: int = 1024 * 1024
    # `TIDINGS_LOG_FORMAT`: json (one object per line) or text; `TIDINGS_ACCESS_LOG`: a line
    # per HTTP request (off by default: it costs CPU on the webhook path).
    log_format: str = "json"
    access_log: bool = False

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def webhook_url(self, kind: str, channel_id: int) -> str:
        return f"{self.public_url}/webhooks/{kind}/{channel_id}"

    @property
    def sandbox_token(self) -> str:
        return sandbox_token(self.secret_key)


def sandbox_token(secret_key: str) -> str:
    """The per-install secret that opens the sandbox (simulators/guard.py): derived from the
    secret key, so every process of an install agrees and rotating the key rotates it."""
    digest = hmac.new(secret_key.encode(), b"tidings sandbox token", hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")


def secret_key_problem(settings: Settings) -> str | None:
    """Why the secret key is unfit to start a server with, or None."""
    size = len(settings.secret_key.encode())
    if size < MIN_SECRET_KEY_BYTES:
        return (
            f"TIDINGS_SECRET_KEY is {size} bytes; it must be at least {MIN_SECRET_KEY_BYTES} "
            "(unset it to have one generated into the data dir, or use "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    return None


def _secret_key(data_dir: Path) -> str:
    """TIDINGS_SECRET_KEY, or for the embedded setup a key generated once into the data dir."""
    key = os.environ.get("TIDINGS_SECRET_KEY")
    if key:
        return key
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    from tidings.storage.files import open_private, private_dir

    private_dir(data_dir)
    key = secrets.token_urlsafe(48)
    with os.fdopen(open_private(path), "w") as handle:  # 0600 from the first byte
        handle.write(key)
    return key


def load_settings(**overrides: object) -> Settings:
    data_dir = Path(os.environ.get("TIDINGS_DATA_DIR", "data")).resolve()
    port = int(os.environ.get("TIDINGS_PORT", "8000"))
    host = os.environ.get("TIDINGS_HOST", "127.0.0.1")
    values: dict[str, object] = {
        "database_url": os.environ.get(
            "TIDINGS_DATABASE_URL", f"sqlite+aiosqlite:///{data_dir / 'tidings.db'}"
        ),
        "data_dir": data_dir,
        "redis_url": os.environ.get("TIDINGS_REDIS_URL") or None,
        "public_url": os.environ.get("TIDINGS_PUBLIC_URL", f"http://{host}:{port}").rstrip("/"),
        # Off unless asked for: the sandbox is for a local trial (`scripts/run` turns it on).
        "sandbox": _flag("TIDINGS_SANDBOX", False),
        "host": host,
        "port": port,
        "run_workers": _flag("TIDINGS_RUN_WORKERS", True),
        "log_level": os.environ.get("TIDINGS_LOG_LEVEL", "info"),
        "workers": _names(os.environ.get("TIDINGS_WORKERS", "")),
        "log_format": os.environ.get("TIDINGS_LOG_FORMAT", "json").strip().lower() or "json",
        "access_log": _flag("TIDINGS_ACCESS_LOG", False),
        "max_json_bytes": int(os.environ.get("TIDINGS_MAX_JSON_BYTES", str(1024 * 1024))),
        "egress_allow": tuple(
            e.strip() for e in os.environ.get("TIDINGS_EGRESS_ALLOW", "").split(",") if e.strip()
        ),
    }
    values.update(overrides)
    if "secret_key" not in values:
        values["secret_key"] = _secret_key(Path(str(values["data_dir"])))
    return Settings(**values)  # type: ignore[arg-type]
