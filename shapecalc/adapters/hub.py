"""Where a Hugging Face config comes from: a ``config.json``, a folder holding one, or a
Hub id (``owner/name``, ``owner/name@revision``) found in the local Hugging Face cache.
The network is never used.

    >>> is_hub_id("meta-llama/Llama-3.1-8B"), is_hub_id("config.json")
    (True, False)
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from shapecalc.core.errors import InvalidArgumentError, echo
from shapecalc.core.frozen import FrozenMethods, frozen

__all__ = [
    "MAX_CONFIG",
    "Source",
    "hub_cache",
    "hub_repo",
    "is_hub_id",
    "link_root",
    "read_config",
    "resolve",
    "shown_name",
    "shown_value",
    "within",
]

#: a config.json larger than this is not a config (refused before it is parsed)
MAX_CONFIG = 16 * 1024 * 1024
#: a snapshot's folder name in the cache: a commit hash (or a name without a path in it)
SNAPSHOT = re.compile(r"^[\w.-]{1,128}$")
#: ``owner/name`` or ``name``, with an optional ``@revision``, as the Hub spells ids
HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*(?:@[\w./-]+)?$")


@frozen
class Source(FrozenMethods):
    """A config's file, the folder around it (its checkpoint's) and how to name it."""

    config: str
    folder: str
    label: str


def _fail(field: str, value: Any, message: str, rule: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, field=field, value=value, rule=rule)


def hub_cache() -> str:
    """The local Hugging Face cache of models, as ``huggingface_hub`` finds it."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.path.expanduser(os.environ[name])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "huggingface", "hub")


def hub_repo(hub_id: str) -> str:
    """The cache's folder of a Hub id (``owner/name@revision``): ``models--owner--name``."""
    return os.path.join(hub_cache(), "models--" + hub_id.partition("@")[0].replace("/", "--"))


def is_hub_id(path: str) -> bool:
    """Whether ``path`` (no file or folder) is read as a Hub id: ``owner/name``, or a bare
    ``name`` the cache holds (``gpt2``)."""
    name = path.partition("@")[0]
    return bool(HUB_ID.match(path)) and ("/" in name or os.path.isdir(hub_repo(path)))


def within(path: str, root: str) -> bool:
    """Whether ``path``, its links followed, stays inside the folder ``root``."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    try:
        return os.path.commonpath([real, base]) == base
    except ValueError:  # different drives
        return False


def link_root(folder: str) -> str:
    """The folder a checkpoint folder's links may lead into: a cache snapshot's whole repo
    (``models--owner--name``: its files are links to ``blobs/``), else the folder itself."""
    real = os.path.realpath(folder)
    parent = os.path.dirname(real)
    if os.path.basename(parent) == "snapshots":
        return os.path.dirname(parent)
    return real


def left(name: str) -> str:
    """Why a file ``name`` whose link leaves its folder is not read."""
    return (
        f"{shown_name(name)} is a link that leads outside the folder: not read (shapecalc "
        "reads only the files it is named, and links within them)"
    )


def _from_cache(hub_id: str) -> str:
    """The snapshot folder of ``hub_id`` in the local cache (``refs/<revision>``, or the
    only snapshot)."""
    name, _, revision = hub_id.partition("@")
    if revision and (".." in revision.split("/") or revision.startswith("/")):
        raise _fail(
            "path",
            hub_id,
            f"{shown_value(hub_id)}: a revision is a branch, tag or commit, not a path",
            "a revision names a ref or a snapshot of the cache",
        )
    cache = hub_cache()
    repo = hub_repo(hub_id)
    rule = "a Hub id must be in the local Hugging Face cache (shapecalc never downloads)"
    if not os.path.isdir(repo):
        raise _fail(
            "path",
            hub_id,
            f"{echo(hub_id)} is not a file or folder, nor a model in the local Hugging Face cache "
            f"({cache}); shapecalc never downloads: `hf download {name} config.json` "
            "fetches the config",
            rule,
        )
    snapshots = os.path.join(repo, "snapshots")
    ref = os.path.join(repo, "refs", revision or "main")
    commit = revision
    if os.path.isfile(ref):
        if not within(ref, repo):
            raise _fail("path", hub_id, f"{shown_value(hub_id)}: {left(ref)}", rule)
        with open(ref, "rb") as handle:
            commit = handle.read(256).decode("ascii", "replace").strip()
        if not SNAPSHOT.match(commit) or commit in (".", ".."):
            # what the file holds is not echoed: it may be anything
            raise _fail(
                "path",
                hub_id,
                f"{shown_value(hub_id)}: its ref {shown_name(revision or 'main')} does not "
                "name a snapshot (a commit hash)",
                rule,
            )
        if not os.path.isdir(os.path.join(snapshots, commit)):
            raise _fail(
                "path",
                hub_id,
                f"{shown_value(hub_id)}: its ref {shown_name(revision or 'main')} names a "
                "snapshot the cache does not hold",
                rule,
            )
    elif not revision:
        found = sorted(os.listdir(snapshots)) if os.path.isdir(snapshots) else []
        if len(found) != 1:
            raise _fail(
                "path",
                hub_id,
                f"{echo(hub_id)} has {len(found)} snapshots in the cache and no refs/main: name "
                f"one as {shown_name(name)}@COMMIT",
                rule,
            )
        commit = found[0]
    folder = os.path.join(snapshots, commit)
    if not SNAPSHOT.match(commit) or commit in (".", "..") or not os.path.isdir(folder):
        raise _fail(
            "path",
            hub_id,
            f"{shown_value(hub_id)}: no snapshot {shown_value(commit)} in the cache",
            rule,
        )
    return folder


def resolve(path: str) -> Source:
    """``path`` as a config file, a folder with ``config.json``, or a cached Hub id."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if os.path.isfile(path):
        return Source(path, os.path.dirname(path) or ".", shown_name(path, 120))
    if os.path.isdir(path):
        config = os.path.join(path, "config.json")
        if os.path.isfile(config) and not within(config, link_root(path)):
            raise _fail("path", path, f"{shown_name(path, 120)}: {left('config.json')}", "inside")
        if not os.path.isfile(config):
            raise _fail(
                "path",
                path,
                f"{path}: the folder holds no config.json",
                "a folder must hold config.json",
            )
        return Source(config, path, shown_name(path, 120))
    folder = os.path.dirname(path)
    cached = is_hub_id(path) and os.path.isdir(hub_repo(path))
    if not cached and (path.lower().endswith(".json") or (folder and os.path.isdir(folder))):
        raise _fail(  # a local path, not a Hub id: cfg/config.json, ./model/conifg.json
            "path",
            path,
            f"{echo(path)}: no such file"
            + ("" if path.lower().endswith(".json") else " or folder")
            + ("" if not folder or os.path.isdir(folder) else f" (no folder {echo(folder)})"),
            "PATH must exist",
        )
    if is_hub_id(path):
        folder = _from_cache(path)
        config = os.path.join(folder, "config.json")
        if os.path.isfile(config) and not within(config, link_root(folder)):
            raise _fail("path", path, f"{shown_name(path, 120)}: {left('config.json')}", "inside")
        if not os.path.isfile(config):
            raise _fail(
                "path",
                path,
                f"{path}: its cached snapshot holds no config.json",
                "a folder must hold config.json",
            )
        return Source(config, folder, shown_name(path, 120))
    raise _fail(
        "path",
        path,
        f"{echo(path)}: no such file or folder (a config.json, a folder with one, or a Hub id "
        "owner/name in the local cache)",
        "PATH must exist",
    )


def read_config(source: Source) -> dict[str, Any]:
    """The JSON object of a config file, refused in one line when it is not one."""
    where = source.label
    try:
        size = os.path.getsize(source.config)
        if size > MAX_CONFIG:
            raise _fail(
                "path",
                where,
                f"{where}: {size:,} bytes is not a config (the cap is {MAX_CONFIG:,})",
                "a config.json is a small JSON object",
            )
        with open(source.config, "rb") as handle:
            raw = handle.read()
    except OSError as err:
        raise _fail(
            "path", where, f"{where}: cannot read it ({err.strerror or err})", "readable"
        ) from None
    try:
        config = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        reason = (
            "it is not UTF-8 text"
            if isinstance(err, UnicodeDecodeError)
            else "nesting too deep"
            if isinstance(err, RecursionError)
            else str(err).splitlines()[0][:120]
        )
        raise _fail(
            "path",
            where,
            f"{where}: not a JSON config ({reason})",
            "a config.json is a JSON object",
        ) from None
    if not isinstance(config, dict):
        raise _fail(
            "path",
            where,
            f"{where}: a config is a JSON object, not a {type(config).__name__}",
            "a config.json is a JSON object",
        )
    return config


def shown_value(value: Any, limit: int = 80) -> str:
    """A value from a file, as JSON, on one line and cut to ``limit`` characters (an
    integer of thousands of digits is said by its length, never printed)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of about {int(value.bit_length() * 0.30103):,} digits"
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown_name(text: str, limit: int = 60) -> str:
    """A name from a file or the command line (a field, a class, a path), its control
    characters escaped, cut to ``limit`` characters."""
    shown = json.dumps(str(text))[1:-1]
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"
