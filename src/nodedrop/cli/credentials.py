"""``nodedrop credentials generate-key | rotate-key`` (docs/credentials.md, "Keys").

``rotate-key`` re-seals every credential under a new key in one transaction: all of them or,
on any failure, none. The current key is ``NODEDROP_SECRET_KEY``, else the data directory's
``secret_key`` (what ``nodedrop up`` made); the new one is read from standard input
(``--new-key-stdin``) or generated. With the data directory's key, the new key replaces it
there: written first as ``secret_key.new``, moved over ``secret_key`` once the transaction has
committed, so a crash in between leaves both keys on disk, never only the wrong one. The api
and the runners hold the key they started with: restart them after a rotation.

Exit status: 0 done, 1 the rotation failed (nothing changed), 2 a key or setting is missing or
wrong.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from nodedrop.cli import admin, settings
from nodedrop.platform.secretbox import KEY_ENV, SecretKey, SecretKeyError
from nodedrop.platform.settings import SecretKeySettings, SettingsError


@dataclass(frozen=True)
class RotateRequest:
    new_key_stdin: bool = False


def generate_key() -> int:
    """A new random key on standard output, for NODEDROP_SECRET_KEY."""
    print(SecretKey.generate().text())
    return 0


def rotate_key(request: RotateRequest) -> int:
    try:
        current, key_file = _current_key()
        new = (
            SecretKey.parse(sys.stdin.readline(), source="the new key (standard input)")
            if request.new_key_stdin
            else SecretKey.generate()
        )
        database_url = admin.servers().database_url
    except (SecretKeyError, settings.SettingError) as error:
        print(f"nodedrop credentials rotate-key: {error}", file=sys.stderr)
        return 2
    if new == current:
        print("nodedrop credentials rotate-key: the new key is the current one", file=sys.stderr)
        return 2
    pending = key_file.with_name(key_file.name + ".new") if key_file is not None else None
    if pending is not None:
        pending.unlink(missing_ok=True)
        settings.write_private(pending, new.text())
    try:
        count = asyncio.run(_rotate(database_url, current, new))
    except SecretKeyError as error:
        _discard(pending)
        print(f"nodedrop credentials rotate-key: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        _discard(pending)
        print(
            f"nodedrop credentials rotate-key: failed, nothing changed: {type(error).__name__}",
            file=sys.stderr,
        )
        return 1
    done = (
        f"re-encrypted {count} credentials under the new key (fingerprint {new.fingerprint}); "
        "restart the api and the runners"
    )
    if key_file is not None and pending is not None:
        os.replace(pending, key_file)
        print(f"{done} (the key is in {key_file})", file=sys.stderr)
    else:
        print(f"{done} with {KEY_ENV} set to the new key", file=sys.stderr)
        if not request.new_key_stdin:
            print(new.text())  # the only line on standard output: the key to set
    return 0


def _current_key() -> tuple[SecretKey, Path | None]:
    """The key in use and, when it came from the data directory, its file."""
    try:
        given = SecretKeySettings.from_env().credentials_key
    except SettingsError as error:
        raise SecretKeyError(str(error)) from None
    if given is not None:
        return given, None
    path = settings.secret_key_path(settings.data_dir())
    text = settings.read_secret_key(path.parent)
    if text is None:
        raise settings.SettingError(f"no current key: set {KEY_ENV}, or run where {path} is")
    return SecretKey.parse(text, source=str(path)), path


def _discard(path: Path | None) -> None:
    if path is not None:
        path.unlink(missing_ok=True)


async def _rotate(database_url: str, current: SecretKey, new: SecretKey) -> int:
    import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information

    from nodedrop.notifier.store import asyncpg_dsn
    from nodedrop.platform.db.credentials import rotate_key

    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await rotate_key(conn, current, new)
    finally:
        await conn.close()
