"""CITATION.cff: valid CFF 1.2.0 fields, the package's version and licence, the four papers,
and the README's references to the same papers."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

from mfrbench import __version__

REPO = Path(__file__).resolve().parents[1]
#: The four papers of ../shared/papers (README there), by title as their texts print it.
PAPERS = {
    "Deep Learning-Based Siamese Neural Network for Masked Face Recognition": "article",
    "Masked Face Recognition with Siamese Network-Based Metric Learning": "thesis",
    "Transfer Learning for Robust Masked Face Recognition": "article",
    "Masked Face Dataset Generation and Masked Face Recognition": "report",
}


@pytest.fixture(scope="module")
def cff() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed: cannot parse CITATION.cff")
    data = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _pyproject() -> dict[str, Any]:
    if sys.version_info < (3, 11):
        pytest.skip("tomllib needs Python 3.11")
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_cff_required_fields(cff: dict) -> None:
    assert cff["cff-version"] == "1.2.0"
    assert isinstance(cff["message"], str) and cff["message"].strip()
    assert cff["title"].startswith("mfrbench") and cff["type"] == "software"
    assert cff["authors"] == [{"name": "The mfrbench developers"}]
    assert str(cff["date-released"]) == "2026-12-04"


def test_cff_version_and_license_are_the_package_s(cff: dict) -> None:
    project = _pyproject()
    assert str(cff["version"]) == project["version"]
    assert __version__ in (project["version"], "0.0.0+unknown")  # installed, or a bare tree
    if __version__ != "0.0.0+unknown":
        assert str(cff["version"]) == __version__
    assert cff["license"] == project["license"]["text"]


def test_cff_references_the_four_papers(cff: dict) -> None:
    refs = cff["references"]
    assert {r["title"]: r["type"] for r in refs} == PAPERS
    for ref in refs:
        assert ref["authors"] and all(a.get("name") for a in ref["authors"]), ref["title"]
        assert "doi" not in ref  # none of the texts gives one: nothing invented
    papers = REPO.parent / "shared" / "papers"
    if papers.is_dir():  # each title and author is in its paper's text
        texts = [
            " ".join(p.read_text(encoding="utf-8").lower().split()) for p in papers.glob("0*.txt")
        ]
        for ref in refs:
            text = next((t for t in texts if ref["title"].lower() in t), None)
            assert text is not None, ref["title"]
            for author in ref["authors"]:
                assert author["name"].lower() in text, author["name"]


def test_readme_lists_the_same_references() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## References\n", 1)
    assert len(section) == 2, "README.md has no References section"
    body = re.split(r"\n## ", section[1], maxsplit=1)[0]
    assert "CITATION.cff" in body
    for title in PAPERS:
        assert title in body.replace("\n   ", " "), title
