"""Re-freezing a protocol with new metadata: its version and id, the protocol it supersedes,
matching old results to it, verify on it, and the shipped protocols' ids left as cited.

The base protocol is the example of docs/protocols.md §9 (three lfw-mini images with their real
sha256), so verify runs on the real files.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mfrbench.errors import UserError
from mfrbench.evaluate.run_record import protocol_section
from mfrbench.protocol import (
    cited_ids,
    compute_digest,
    load_protocol,
    matches,
    next_version,
    protocol_id,
    refreeze,
    show,
    validate,
    verify,
    write_protocol,
)

REPO = Path(__file__).resolve().parents[1]
NEW_CITATION = "@inproceedings{later,\n  title = {Published later},\n  year = {2027}\n}\n"


@pytest.fixture()
def example(tmp_path: Path) -> dict[str, Any]:
    doc = (REPO / "docs" / "protocols.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- example-protocol -->\s*```json\n(.*?)\n```", doc, re.S)
    assert block, "docs/protocols.md lost its example protocol"
    path = tmp_path / "example.json"
    path.write_bytes(block.group(1).encode("utf-8") + b"\n")
    return dict(load_protocol(path))


def _round_trip(protocol: Any, path: Path) -> dict[str, Any]:
    write_protocol(protocol, path)
    return dict(load_protocol(path))


def test_new_citation_raises_the_version_and_records_the_old_id(
    example: dict, tmp_path: Path
) -> None:
    new = _round_trip(refreeze(example, citation=NEW_CITATION), tmp_path / "v2.json")
    assert new["citation"] == NEW_CITATION and new["version"] == "2"
    assert new["digest"] != example["digest"] and new["name"] == example["name"]
    assert new["supersedes"] == [{"name": "example", "version": "1", "digest": example["digest"]}]
    # Everything that decides scores is carried over as it was, the writer's version too.
    for key in ("images", "pairs", "dataset", "generation", "summary", "mfrbench_version"):
        assert new[key] == example[key], key
    assert new["description"] == example["description"]
    assert show(new)["citation"] == NEW_CITATION
    assert show(new)["supersedes"] == [protocol_id(example)]


def test_refreeze_without_changes_is_the_same_file(example: dict, tmp_path: Path) -> None:
    write_protocol(example, tmp_path / "old.json")
    again = refreeze(example, version=example["version"], citation=example["citation"])
    write_protocol(again, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "old.json").read_bytes()
    assert "supersedes" not in again


def test_results_on_the_old_protocol_match_the_new_one(example: dict) -> None:
    """A report computed on version 1 cites its id and digest; both still name version 2 and 3."""
    old_report = protocol_section(example, protocol_id(example), "example.json")
    v2 = refreeze(example, citation=NEW_CITATION)
    v3 = refreeze(v2, description="Two pairs, now with a longer description.")
    assert v3["version"] == "3"
    assert [e["version"] for e in v3["supersedes"]] == ["1", "2"]
    assert cited_ids(v3) == [protocol_id(v3), protocol_id(v2), protocol_id(example)]
    for protocol in (v2, v3):
        assert protocol_id(protocol) != old_report["id"]
        assert matches(protocol, old_report["id"]) and matches(protocol, old_report["digest"])
        assert matches(protocol, protocol_id(protocol))
    assert matches(v3, protocol_id(v2)) and not matches(v2, protocol_id(v3))
    # The pair ids a scores file refers to are the same pairs.
    assert [(p["id"], p["a"], p["b"]) for p in v3["pairs"]] == [
        (p["id"], p["a"], p["b"]) for p in example["pairs"]
    ]


def test_matches_needs_the_name_and_twelve_digits(example: dict) -> None:
    new = refreeze(example, citation=NEW_CITATION)
    digest = example["digest"]
    assert not matches(new, f"other@{digest[:12]}")
    assert not matches(new, f"example@{digest[:11]}")
    assert matches(new, f"example@{digest[:20]}")
    assert not matches(new, f"example@{'0' * 12}")
    assert not matches(new, digest[:12])  # a bare hex prefix is not an id
    unrelated = refreeze(example, name="unrelated")  # renamed: another id...
    assert not matches(example, protocol_id(unrelated))  # ...that the old file never had


def test_rename_keeps_the_version(example: dict) -> None:
    renamed = refreeze(example, name="example-cited", citation=NEW_CITATION)
    assert renamed["name"] == "example-cited" and renamed["version"] == "1"
    assert matches(renamed, protocol_id(example))
    assert protocol_id(renamed).startswith("example-cited@")


def test_old_version_with_new_metadata_is_refused(example: dict) -> None:
    with pytest.raises(UserError, match=r"version 1 of example is already example@.*--version"):
        refreeze(example, version="1", citation=NEW_CITATION)
    # An explicit new version is taken as given.
    assert refreeze(example, version="2024b", citation=NEW_CITATION)["version"] == "2024b"


@pytest.mark.parametrize(
    ("version", "raised"), [("1", "2"), ("9", "10"), ("1.9", "1.10"), ("v3", "v4")]
)
def test_next_version(version: str, raised: str) -> None:
    assert next_version(version) == raised


def test_version_without_a_number_needs_an_explicit_one(example: dict) -> None:
    lettered = refreeze(example, version="alpha")
    with pytest.raises(UserError, match=r"'alpha' does not end in a number.*--version"):
        refreeze(lettered, citation=NEW_CITATION)


def test_verify_passes_on_the_refrozen_protocol(example: dict, lfw_mini: Path) -> None:
    new = refreeze(example, citation=NEW_CITATION)
    old_report, new_report = verify(example, lfw_mini), verify(new, lfw_mini)
    assert old_report.ok and new_report.ok, new_report.message()
    assert new_report.checked == old_report.checked == 3
    assert new_report.protocol_id == protocol_id(new)


def _edited(protocol: dict, edit: Any) -> dict:
    out = copy.deepcopy(protocol)
    edit(out)
    out["digest"] = compute_digest(out)
    return out


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda p: p.update(supersedes=[]), "non-empty list"),
        (lambda p: p["supersedes"][0].update(extra=1), "unknown key"),
        (lambda p: p["supersedes"][0].pop("digest"), "lacks key"),
        (lambda p: p["supersedes"][0].update(digest="ABC"), "64 lower-case hex"),
        (lambda p: p["supersedes"][0].update(version=""), "non-empty string"),
        (lambda p: p["supersedes"][0].update(name="bad name"), "must match"),
        (lambda p: p["supersedes"].append(dict(p["supersedes"][0])), "named twice"),
        (lambda p: p["supersedes"][0].update(version="2"), "named twice"),  # its own version
    ],
)
def test_bad_supersedes_is_refused(example: dict, edit: Any, needle: str) -> None:
    new = refreeze(example, citation=NEW_CITATION)
    validate(new)
    with pytest.raises(UserError, match=needle):
        validate(_edited(new, edit))


def test_shipped_protocols_keep_the_ids_the_docs_cite() -> None:
    """The decision of docs/protocols.md §4: shipped files keep their bytes and cited ids."""
    readme = (REPO / "protocols" / "README.md").read_text(encoding="utf-8")
    spec = (REPO / "docs" / "protocols.md").read_text(encoding="utf-8")
    files = sorted((REPO / "protocols").glob("*.json"))
    assert len(files) == 3
    for path in files:
        obj = json.loads(path.read_bytes())
        assert compute_digest(obj) == obj["digest"] and "supersedes" not in obj
        pid = protocol_id(obj)
        assert f"`{pid}`" in readme and f"`{pid}`" in spec, pid


def test_rebuild_script_names_every_shipped_protocol() -> None:
    """Default names changed (issue 15); the shipped protocols never used them."""
    script = (REPO / "protocols" / "rebuild.sh").read_text(encoding="utf-8")
    commands = re.findall(r"\$MB pairs .*?--out \"\$OUT/([\w.-]+)\.json\"", script, re.S)
    assert sorted(commands) == sorted(p.stem for p in (REPO / "protocols").glob("*.json"))
    for command in re.split(r"\n\$MB ", script)[1:]:
        if command.startswith("pairs"):
            out = re.search(r'--out "\$OUT/([\w.-]+)\.json"', command)
            assert out and f"--name {out.group(1)} " in command
