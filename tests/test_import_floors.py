"""No import runs from a lower floor to a higher one: the package's layering, read from its source.

Every ``import`` under ``vtp_lightning/`` and ``callbacks/`` (function-level ones too: they run as
well) is parsed with ``ast`` and checked against :data:`FLOORS`, the rooms of the project from the
bottom up. Importing ``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``, so those count as
imported. Three rules:

1. a module imports only its own floor and the floors below it;
2. the Lightning-free rooms (:data:`LIGHTNING_FREE`) reach no module importing Lightning, directly or
   through other modules of the project;
3. no module imports a command-line module (a ``[project.scripts]`` entry point or a ``__main__``),
   except another command built on it.

``docs/CONTRACTS.md`` describes each room; change both together.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vtp_lightning", "callbacks")

# The floors, bottom first: (floor, rooms). A room is a module (``vtp_lightning.errors``) or a package
# with everything below it (``vtp_lightning.models.*``); the most specific room of a module wins.
FOUNDATION = (
    "vtp_lightning",
    "vtp_lightning.errors",
    "vtp_lightning.distributed",
    "vtp_lightning.combinations",
    "vtp_lightning.metric_names",
    "vtp_lightning.grid_layout",
    "vtp_lightning.config_files",
    "vtp_lightning.renamed_options",
    "vtp_lightning.pixels",
)
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("foundation", FOUNDATION),
    ("checkpoint files", ("vtp_lightning.weights.*",)),
    ("models", ("vtp_lightning.models.*",)),
    (
        "data, losses, option checks",
        ("vtp_lightning.option_checks", "vtp_lightning.data.*", "vtp_lightning.losses.*"),
    ),
    ("metrics", ("vtp_lightning.metrics.*",)),
    (
        "official conversion, rebuilt weights",
        ("vtp_lightning.official.*", "vtp_lightning.weights.consistency", "vtp_lightning.weights.pretrained"),
    ),
    (
        "Lightning parts",
        (
            "vtp_lightning.always_on.*",
            "vtp_lightning.weights.lightning_io",
            "vtp_lightning.run_history",
            "vtp_lightning.fsdp.*",
        ),
    ),
    (
        "training and evaluation",
        (
            "vtp_lightning.objectives.*",
            "vtp_lightning.tokenizer",
            "vtp_lightning.decoder_tuning",
            "callbacks.*",
            "vtp_lightning.latents.*",
            "vtp_lightning.official.model_options",
            "vtp_lightning.bench.*",
        ),
    ),
    (
        "studies",
        (
            "vtp_lightning.grid",
            "vtp_lightning.scaling_cost",
            "vtp_lightning.scaling_reuse",
            "vtp_lightning.scaling_run",
            "vtp_lightning.protocol_eval",
            "vtp_lightning.report.*",
        ),
    ),
    (
        "commands",
        (
            "vtp_lightning.cli",
            "vtp_lightning.cli_parser",
            "vtp_lightning.export",
            "vtp_lightning.official.command",
            "vtp_lightning.report.cli",
            "vtp_lightning.latents.encode_command",
            "vtp_lightning.__main__",
            "vtp_lightning.bench.__main__",
        ),
    ),
)

# Rooms that must not reach Lightning (the maths and the files: usable without a Trainer): the whole
# foundation and these.
LIGHTNING_FREE = (
    *FOUNDATION,
    "vtp_lightning.models.*",
    "vtp_lightning.losses.*",
    "vtp_lightning.metrics.*",
    "vtp_lightning.weights.checkpoint_file",
    "vtp_lightning.weights.file_kind",
    "vtp_lightning.weights.dcp_check",
    "vtp_lightning.weights.provenance",
    "vtp_lightning.weights.export_dir",
    "vtp_lightning.weights.sharded_checkpoint",
    "vtp_lightning.weights.resume",
    "vtp_lightning.weights.consistency",
    "vtp_lightning.weights.pretrained",
    "vtp_lightning.official.convert",
    "vtp_lightning.official.loading",
)
LIGHTNING_PACKAGES = ("lightning", "pytorch_lightning")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


MODULES = _modules()


def _imports(name: str) -> tuple[set[str], set[str]]:
    """(modules of the project that importing ``name`` runs, top-level outside packages it imports)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    outside: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # ``from pkg import sub`` imports the submodule when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] not in PACKAGES:
                outside.add(target.split(".")[0])
                continue
            parts = target.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES}
    found.discard(name)
    return found, outside


IMPORTS = {name: _imports(name) for name in MODULES}


def _matches(name: str, room: str) -> bool:
    return name.startswith(room[:-1]) or name == room[:-2] if room.endswith(".*") else name == room


def _room(name: str) -> tuple[int, str] | None:
    """(floor index, room) of a module: its most specific room."""
    candidates = [
        (len(room.rstrip(".*")), index, room)
        for index, (_, rooms) in enumerate(FLOORS)
        for room in rooms
        if _matches(name, room)
    ]
    if not candidates:
        return None
    _, index, room = max(candidates)
    return index, room


def _commands() -> set[str]:
    # [project.scripts] lines ``name = "module:function"`` (tomllib is Python 3.11+; the project runs on 3.10)
    section = (REPO / "pyproject.toml").read_text().split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    named = set(re.findall(r'^\s*[\w.-]+\s*=\s*"([\w.]+):\w+"', section, flags=re.MULTILINE))
    return named | {name for name in MODULES if name.endswith(".__main__")}


COMMANDS = _commands()


def test_every_module_has_a_room() -> None:
    homeless = sorted(name for name in MODULES if _room(name) is None)
    assert not homeless, f"add these modules to a room of FLOORS (and docs/CONTRACTS.md): {homeless}"


def test_every_command_line_module_is_on_the_top_floor() -> None:
    top = len(FLOORS) - 1
    assert set(MODULES) >= COMMANDS, "a [project.scripts] entry names a module that does not exist"
    assert all(_room(name) == (top, name) for name in COMMANDS), sorted(COMMANDS)


def test_no_import_runs_from_a_lower_floor_to_a_higher_one() -> None:
    upward = []
    for name, (imported, _) in IMPORTS.items():
        floor = _room(name)
        for target in sorted(imported):
            target_floor = _room(target)
            if floor is not None and target_floor is not None and target_floor[0] > floor[0]:
                upward.append(
                    f"{name} ({FLOORS[floor[0]][0]}) imports {target} ({FLOORS[target_floor[0]][0]})"
                )
    assert not upward, "\n".join(upward)


def test_only_commands_import_command_line_modules() -> None:
    offenders = [
        f"{name} imports {target}"
        for name, (imported, _) in IMPORTS.items()
        if name not in COMMANDS
        for target in sorted(imported & COMMANDS)
    ]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("room", LIGHTNING_FREE)
def test_lightning_free_rooms_reach_no_lightning(room: str) -> None:
    members = [name for name in MODULES if _matches(name, room)]
    assert members, f"{room} names no module"
    for start in members:
        seen, queue = {start: [start]}, deque([start])
        while queue:
            name = queue.popleft()
            imported, outside = IMPORTS[name]
            assert not outside & set(LIGHTNING_PACKAGES), " -> ".join(seen[name]) + " imports Lightning"
            for target in imported - seen.keys():
                seen[target] = [*seen[name], target]
                queue.append(target)


@pytest.mark.parametrize(
    ("importer", "imported", "check"),
    [
        (
            "vtp_lightning.models.vit",
            "vtp_lightning.objectives.base",
            test_no_import_runs_from_a_lower_floor_to_a_higher_one,
        ),
        (
            "vtp_lightning.weights.provenance",
            "vtp_lightning.export",
            test_only_commands_import_command_line_modules,
        ),
    ],
    ids=["upward", "command"],
)
def test_the_checks_fail_on_an_import_they_forbid(
    importer: str, imported: str, check: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checks can fail: one forbidden edge added to the parsed imports is reported by name."""
    edges, outside = IMPORTS[importer]
    monkeypatch.setitem(IMPORTS, importer, (edges | {imported}, outside))
    with pytest.raises(AssertionError, match=f"{importer}.*{imported}"):
        check()  # type: ignore[operator]


def test_the_lightning_check_fails_on_a_model_importing_lightning(monkeypatch: pytest.MonkeyPatch) -> None:
    edges, outside = IMPORTS["vtp_lightning.models.rope"]
    monkeypatch.setitem(IMPORTS, "vtp_lightning.models.rope", (edges, outside | {"lightning"}))
    with pytest.raises(AssertionError, match=r"vtp_lightning\.models\..*rope imports Lightning"):
        test_lightning_free_rooms_reach_no_lightning("vtp_lightning.models.*")
