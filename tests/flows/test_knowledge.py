"""The knowledge base covers every document type and office of the design, each entry checkable."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from flows.knowledge import KnowledgeError, load_documents, load_offices
from nlu.entities import DOCUMENT_TYPES, OFFICES

DUKCAPIL = (
    "ktp_el",
    "kk",
    "akta_kelahiran",
    "akta_kematian",
    "akta_perkawinan",
    "akta_perceraian",
    "kia",
    "pindah_datang",
)


def test_every_document_type_of_the_design_is_answered_with_source_and_verified_date() -> None:
    documents = load_documents().documents
    offices = load_offices().offices

    assert set(documents) == set(DOCUMENT_TYPES)
    for key, info in documents.items():
        assert info.source and isinstance(info.verified, date), key
        assert info.requirements["id"] and info.requirements["en"], key
        assert all(o in offices or o in ("kantor_camat", "kantor_lurah") for o in info.offices), key


def test_dukcapil_documents_are_free_by_law_and_pbg_explains_its_formula() -> None:
    documents = load_documents().documents

    for key in DUKCAPIL:
        assert "79A" in documents[key].fee.id, key
    assert "PP 16/2021" in documents["pbg"].fee.id
    assert "Rp" not in documents["pbg"].fee.id
    assert "oss.go.id" in documents["nib"].online.id
    assert "simbg.pu.go.id" in documents["pbg"].online.id and "simbg.pu.go.id" in documents["slf"].online.id


def test_offices_of_the_design_have_coordinates_and_weekly_hours() -> None:
    book = load_offices()

    assert set(OFFICES) - {"kantor_lurah"} == set(book.offices)
    for office in book.offices.values():
        assert -0.2 < office.lat < 0.1 and 109.2 < office.lon < 109.45, office.key
        assert office.hours.on(4), office.key  # open on Friday
        assert not office.hours.on(6), office.key  # closed on Sunday
    assert [book.camat_of(f"61.71.0{i}") is not None for i in range(1, 7)] == [True] * 6


def test_a_broken_file_names_the_entry(tmp_path: Path) -> None:
    broken = tmp_path / "offices.yml"
    broken.write_text(
        "schedules: {}\noffices:\n  x: {name: {id: a, en: b}, lat: 0, lon: 109, hours: nope}\n",
        encoding="utf-8",
    )

    with pytest.raises(KnowledgeError, match=r"offices\.x\.short: expected id and en texts"):
        load_offices(broken)
