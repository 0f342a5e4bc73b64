"""Guards of the documentation: the pages name what exists, and the README stays short.

Conventions checked here:

- docs/configuration.md names every option file ``conf/<group>/<option>.yaml`` as the code
  span `` `<group>=<option>` `` (backticks included; a nested group keeps its slashes:
  ``conf/hydra/launcher/slurm.yaml`` is `` `hydra/launcher=slurm` ``).
- docs/README.md links every ``.md`` page of docs/ (a markdown link whose target is the
  page's file name).
- The docstring of every package's ``__init__.py`` under src/rest_mcts names each of its
  modules (``.py`` files) and sub-packages in backticks, bare or dotted: `` `context` ``,
  ``` ``context`` ```, ``:mod:`~rest_mcts.loop.context` `` all name ``context``. A new
  package (e.g. ``runtime/``) needs nothing here, only such a docstring.
- README.md has at most :data:`README_MAX_LINES` lines.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
DOCS = ROOT / "docs"
PACKAGE = ROOT / "src" / "rest_mcts"
README_MAX_LINES = 220


def option_files() -> list[tuple[str, str]]:
    """(group, option) of every ``conf/<group>/<option>.yaml`` (groups may nest)."""
    return sorted((p.parent.relative_to(CONF).as_posix(), p.stem)
                  for p in CONF.rglob("*.yaml") if p.parent != CONF)


def missing_options(text: str, options: list[tuple[str, str]]) -> list[str]:
    return [f"{g}={o}" for g, o in options if f"`{g}={o}`" not in text]


def unlinked_pages(index: str, pages: list[str]) -> list[str]:
    targets = set(re.findall(r"\]\(\s*(?:\./)?([^)\s#]+)(?:#[^)]*)?\)", index))
    return [p for p in pages if p not in targets]


def packages() -> list[Path]:
    return sorted(PACKAGE.rglob("__init__.py"))


def modules_of(init: Path) -> list[str]:
    """The package's modules (``.py`` files but ``__init__``) and sub-packages."""
    folder = init.parent
    names = [p.stem for p in folder.glob("*.py") if p.name != "__init__.py"]
    names += [p.name for p in folder.iterdir() if (p / "__init__.py").is_file()]
    return sorted(names)


def unnamed_modules(docstring: str | None, names: list[str]) -> list[str]:
    """The names that ``docstring`` does not put in backticks (a dotted prefix, a ``~`` and a
    ``.py`` or ``/`` suffix are allowed: `rest_mcts.loop.context`, `context.py`)."""
    text = docstring or ""
    return [n for n in names
            if not re.search(r"`~?(?:[\w]+\.)*" + re.escape(n) + r"(?:\.py|/)?`", text)]


def test_option_files_found() -> None:
    """The walk itself sees the groups (an empty list would pass every check below)."""
    groups = {g for g, _ in option_files()}
    assert {"stage", "search", "model", "data", "sweep", "hydra/launcher"} <= groups


def test_configuration_names_every_option_file() -> None:
    text = (DOCS / "configuration.md").read_text()
    missing = missing_options(text, option_files())
    assert not missing, (f"docs/configuration.md does not name these option files as "
                         f"`<group>=<option>`: {missing}")


def test_configuration_check_fails_on_a_missing_option() -> None:
    text = (DOCS / "configuration.md").read_text()
    broken = text.replace("`search=mcts_star_lean`", "search mcts_star_lean")
    assert "search=mcts_star_lean" in missing_options(broken, option_files())
    # a longer option of the same prefix does not stand in for a shorter one
    assert missing_options("`search=mcts_star_widen`", [("search", "mcts_star")])


def test_docs_index_links_every_page() -> None:
    pages = sorted(p.name for p in DOCS.glob("*.md") if p.name != "README.md")
    assert pages, "docs/ has no pages"
    missing = unlinked_pages((DOCS / "README.md").read_text(), pages)
    assert not missing, f"docs/README.md does not link: {missing}"


def test_docs_index_check_fails_on_an_unlinked_page() -> None:
    index = "- [Architecture](architecture.md)\n- [Viewer](./viewer.md#top)\n"
    assert unlinked_pages(index, ["architecture.md", "viewer.md", "training.md"]) == [
        "training.md"]


@pytest.mark.parametrize("init", packages(), ids=lambda p: p.parent.relative_to(PACKAGE.parent)
                         .as_posix())
def test_package_docstring_names_its_modules(init: Path) -> None:
    docstring = ast.get_docstring(ast.parse(init.read_text()))
    assert docstring, f"{init.relative_to(ROOT)} has no docstring"
    missing = unnamed_modules(docstring, modules_of(init))
    assert not missing, (f"the docstring of {init.relative_to(ROOT)} does not name "
                         f"(in backticks) its modules {missing}")


def test_package_docstring_check_fails_on_an_unnamed_module() -> None:
    names = ["context", "data", "search_run"]
    assert unnamed_modules("`context`, ``data`` and :mod:`~rest_mcts.loop.search_run`",
                           names) == []
    assert unnamed_modules("the context, the data, `search_run`", names) == ["context", "data"]
    assert unnamed_modules(None, names) == names


def test_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move guides to docs/")
