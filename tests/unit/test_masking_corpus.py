"""Recall and false masks of identifier masking on the labelled corpus (tests/corpus).

An identifier counts as masked when every character of it lies inside a span the masking
found; a found span that touches no labelled identifier is a false mask. The figures are
printed (``pytest -s``) and recorded in BENCHMARKS.md.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from streams.intake.identity import Pseudonymiser
from streams.intake.masking import find_identifiers

CORPUS = Path(__file__).parents[1] / "corpus" / "identifiers.jsonl"
NUMBERS = ("mobile", "landline", "id_number")


def measure(rows: list[dict] | None = None) -> dict[str, object]:
    labelled, masked, false_masks, found_total, misses = Counter(), Counter(), 0, 0, []
    rows = rows if rows is not None else corpus()
    for row in rows:
        text, found = row["text"], find_identifiers(row["text"])
        covered = {i for f in found for i in range(f.start, f.end)}
        spans = []
        for ident in row["identifiers"]:
            start = text.index(ident["text"])
            spans.append((start, start + len(ident["text"])))
            labelled[ident["kind"]] += 1
            if all(i in covered for i in range(*spans[-1])):
                masked[ident["kind"]] += 1
            else:
                misses.append((ident["kind"], ident["text"], text))
        found_total += len(found)
        false_masks += sum(1 for f in found if not any(a < f.end and f.start < b for a, b in spans))
    numbers = sum(labelled[k] for k in NUMBERS)
    return {
        "texts": len(rows),
        "recall_numbers": sum(masked[k] for k in NUMBERS) / max(1, numbers),
        "recall_names": masked["name"] / max(1, labelled["name"]),
        "by_kind": {k: f"{masked[k]}/{labelled[k]}" for k in labelled},
        "false_mask_rate": false_masks / max(1, found_total),
        "false_masks": false_masks,
        "misses": misses,
    }


def corpus() -> list[dict]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def figures() -> dict[str, object]:
    figures = measure()
    print("\nmasking corpus, all:", json.dumps({k: v for k, v in figures.items() if k != "misses"}, ensure_ascii=False))
    for held in (1, 2):
        f = measure([row for row in corpus() if row.get("held_out") == held])
        print(f"held-out set {held}:", json.dumps({k: v for k, v in f.items() if k != "misses"}, ensure_ascii=False),
              "misses:", f["misses"])
    return figures


def test_the_corpus_is_large_and_mixed(figures):
    assert figures["texts"] >= 500
    assert set(figures["by_kind"]) == {"name", *NUMBERS}


def test_numbers_are_masked_however_they_are_written(figures):
    assert figures["recall_numbers"] >= 0.99, figures["misses"]


def test_names_in_sentences_are_masked(figures):
    assert figures["recall_names"] >= 0.9, [m for m in figures["misses"] if m[0] == "name"]


def test_few_words_are_masked_that_are_not_identifiers(figures):
    assert figures["false_mask_rate"] <= 0.05


def test_masked_text_keeps_no_digit_of_an_identifier():
    p = Pseudonymiser(b"corpus")
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        out = p.mask_text(row["text"])
        for ident in row["identifiers"]:
            if ident["kind"] != "name":
                assert ident["text"] not in out, (row["text"], out)
        assert p.mask_text(out) == out  # masking twice changes nothing
