"""What API-key checking costs a request: one argon2 verification (a cache miss) against a cache hit, and
``GET /models`` through the app with authentication disabled, with a cached key, and with the cache off.

Uses a throwaway SQLite database in a temporary folder; prints figures, asserts nothing.

    .venv/bin/python benchmarks/auth_cost.py --requests 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.auth.service import KeyCache, create_key, verify_key  # noqa: E402
from app.config import Settings, get_settings  # noqa: E402
from app.db import make_sessionmaker  # noqa: E402
from app.main import create_app  # noqa: E402
from app.migrate import prestart  # noqa: E402


def per_call_ms(fn, n: int) -> tuple[float, float]:
    """(median, p99) milliseconds of ``n`` calls of ``fn``."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(n - 1, int(0.99 * n))]


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dallmi-auth-") as home:
        base = Settings(database_url=f"sqlite:///{home}/dallmi.db", artifacts_dir=Path(home) / "artifacts")
        prestart(base)
        with make_sessionmaker(base.database_url)() as session:
            _, key = create_key(session, name="bench", scopes=["admin"])
            median, p99 = per_call_ms(lambda: verify_key(session, key=key), 20)
        print(f"argon2 verification + lookup (cache miss): median {median:.1f} ms, p99 {p99:.1f} ms")
        cache = KeyCache(ttl_s=30)
        cache.put(key, verify_key(make_sessionmaker(base.database_url)(), key=key))
        median, p99 = per_call_ms(lambda: cache.get(key), 10_000)
        print(f"cache hit: median {median * 1000:.1f} us, p99 {p99 * 1000:.1f} us")
        variants = {
            "auth disabled": (base.model_copy(update={"auth": "disabled"}), {}),
            "key, cache on (30 s)": (base.model_copy(update={"auth": "required"}), {"Authorization": f"Bearer {key}"}),
            "key, cache off (TTL 0)": (
                base.model_copy(update={"auth": "required", "auth_cache_ttl_s": 0}),
                {"Authorization": f"Bearer {key}"},
            ),
        }
        for name, (settings, headers) in variants.items():
            app = create_app()
            app.dependency_overrides[get_settings] = lambda settings=settings: settings
            with TestClient(app) as client:
                assert client.get("/models", headers=headers).status_code == 200
                call = lambda client=client, h=headers: client.get("/models", headers=h)  # noqa: E731
                median, p99 = per_call_ms(call, args.requests)
            print(f"GET /models, {name:<24} median {median:.2f} ms, p99 {p99:.2f} ms ({args.requests} requests)")


if __name__ == "__main__":
    main()
