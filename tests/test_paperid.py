"""Tests for canonical paper ids: the shared vectors, plus properties over generated inputs.

The vectors in ``tests/vectors/paper_ids.json`` are also run by the extension's Node suite
(``extension/test/paperid.test.js``) against the JavaScript twin, so both stay in step.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from recommender.paperid import (
    MAX_INPUT_LENGTH,
    SUPPORTED_HOSTS,
    canonical_paper_id,
    is_paper_url,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "paper_ids.json").read_text("utf-8"))
CANONICAL = VECTORS["canonical"]
PAPER_URL = VECTORS["is_paper_url"]

# A few real old-style archives; the module's list is the authority.
OLD_ARCHIVES = ("hep-th", "hep-ph", "math", "cs", "astro-ph", "cond-mat", "quant-ph", "gr-qc")


def test_vector_file_is_large_and_unique() -> None:
    inputs = [case["input"] for case in CANONICAL]
    assert len(inputs) >= 80
    assert len(set(inputs)) == len(inputs)
    assert any(case["expected"] is None for case in CANONICAL)
    namespaces = {case["expected"].split(":")[0] for case in CANONICAL if case["expected"]}
    assert namespaces == {"arxiv", "doi", "openreview", "acl", "pwc"}


@pytest.mark.parametrize("case", CANONICAL, ids=lambda case: case["note"])
def test_canonical_vector(case: dict) -> None:
    assert canonical_paper_id(case["input"]) == case["expected"]


@pytest.mark.parametrize("case", CANONICAL, ids=lambda case: case["note"])
def test_canonical_vector_is_fixed_point(case: dict) -> None:
    if case["expected"] is not None:
        assert canonical_paper_id(case["expected"]) == case["expected"]


@pytest.mark.parametrize("case", PAPER_URL, ids=lambda case: case["note"])
def test_is_paper_url_vector(case: dict) -> None:
    assert is_paper_url(case["input"]) is case["expected"]


def test_supported_hosts_match_vectors() -> None:
    assert list(SUPPORTED_HOSTS) == VECTORS["supported_hosts"]
    assert all(host == host.lower() for host in SUPPORTED_HOSTS)


@pytest.mark.parametrize("value", [None, 2401.12345, b"2401.12345", ["2401.12345"], object()])
def test_non_strings_are_rejected(value: object) -> None:
    assert canonical_paper_id(value) is None  # type: ignore[arg-type]
    assert is_paper_url(value) is False  # type: ignore[arg-type]


def test_length_bound() -> None:
    padded = " " * (MAX_INPUT_LENGTH - len("2401.12345")) + "2401.12345"
    assert canonical_paper_id(padded) == "arxiv:2401.12345"
    assert canonical_paper_id(" " + padded) is None


# --- generated inputs -------------------------------------------------------------------------


@st.composite
def new_style_ids(draw: st.DrawFn) -> tuple[str, str]:
    """A valid new-style id with an optional version, and its canonical form."""
    year = draw(st.integers(7, 99))
    month = draw(st.integers(4 if year == 7 else 1, 12))
    digits = 4 if year < 15 else 5
    seq = draw(st.integers(1, 10**digits - 1))
    base = f"{year:02d}{month:02d}.{seq:0{digits}d}"
    return base + draw(versions()), f"arxiv:{base}"


@st.composite
def old_style_ids(draw: st.DrawFn) -> tuple[str, str]:
    """A valid old-style id (maybe with subject class and version), and its canonical form."""
    year = draw(st.integers(1991, 2007))
    month = draw(st.integers(1, 3 if year == 2007 else 12))
    number = draw(st.integers(1, 999))
    archive = draw(st.sampled_from(OLD_ARCHIVES))
    digits = f"{year % 100:02d}{month:02d}{number:03d}"
    subject = draw(st.sampled_from(["", ".GT", ".AI", ".CA"]))
    shown = draw(st.sampled_from([archive, archive.upper()]))
    return f"{shown}{subject}/{digits}" + draw(versions()), f"arxiv:{archive}/{digits}"


def versions() -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), st.integers(1, 99).map(lambda n: f"v{n}"))


def arxiv_ids() -> st.SearchStrategy[tuple[str, str]]:
    return st.one_of(new_style_ids(), old_style_ids())


URL_FORMS = (
    "{s}://arxiv.org/abs/{id}",
    "{s}://arxiv.org/abs/{id}/",
    "{s}://www.arxiv.org/abs/{id}",
    "{s}://export.arxiv.org/abs/{id}",
    "{s}://arxiv.org/pdf/{id}",
    "{s}://arxiv.org/pdf/{id}.pdf",
    "{s}://arxiv.org/html/{id}",
    "{s}://arxiv.org/html/{id}/",
    "{s}://arxiv.org/html/{id}/x1.png",
    "{s}://arxiv.org/format/{id}",
    "{s}://arxiv.org/ps/{id}",
    "{s}://arxiv.org/abs?id={id}",
    "{s}://huggingface.co/papers/{id}",
    "{s}://www.alphaxiv.org/abs/{id}",
    "{s}://www.alphaxiv.org/overview/{id}",
    "{s}://ar5iv.org/abs/{id}",
    "{s}://ar5iv.labs.arxiv.org/html/{id}",
    "arxiv.org/abs/{id}",
    "arXiv:{id}",
    "arxiv:{id}",
    "{id}",
)
SUFFIXES = ("", "?context=cs.LG", "#S2", "?a=1&b=2#frag")


def strip_version(arxiv_id: str) -> str:
    head, sep, tail = arxiv_id.rpartition("v")
    return head if sep and tail.isdigit() and "/" not in tail and "." not in tail else arxiv_id


@given(
    pair=arxiv_ids(),
    form=st.sampled_from(URL_FORMS),
    scheme=st.sampled_from(["http", "https", "HTTPS"]),
    suffix=st.sampled_from(SUFFIXES),
)
def test_round_trip_every_form(pair: tuple[str, str], form: str, scheme: str, suffix: str) -> None:
    arxiv_id, expected = pair
    if form == "{s}://arxiv.org/abs?id={id}":
        suffix = suffix.replace("?", "&", 1)  # the id is already the query
    value = form.format(s=scheme, id=arxiv_id)
    if "://" in form or form.startswith("arxiv.org"):
        value += suffix
    assert canonical_paper_id(value) == expected
    assert is_paper_url(value) is ("/" in form.replace("{id}", ""))


@given(pair=arxiv_ids())
def test_arxiv_doi_round_trip(pair: tuple[str, str]) -> None:
    arxiv_id, expected = pair
    assert canonical_paper_id(f"10.48550/arXiv.{strip_version(arxiv_id)}") == expected
    assert canonical_paper_id(f"https://doi.org/10.48550/arXiv.{strip_version(arxiv_id)}") == (
        expected
    )


@given(
    registrant=st.integers(1000, 999_999_999),
    suffix=st.text(alphabet=string.ascii_letters + string.digits + "-._;()/:", min_size=1),
)
def test_doi_round_trip(registrant: int, suffix: str) -> None:
    doi = f"10.{registrant}/{suffix}"
    expected = f"doi:{doi.lower()}"
    if registrant == 48550:
        return
    assert canonical_paper_id(doi) == expected
    assert canonical_paper_id(f"doi:{doi.upper()}") == expected
    if not {".", ".."} & set(doi.split("/")):  # a URL path may not hold dot segments
        assert canonical_paper_id(f"https://doi.org/{doi}") == expected


@given(
    year=st.integers(1991, 2099),
    month=st.integers(0, 99),
    seq=st.integers(0, 999_999),
    width=st.integers(1, 7),
)
def test_new_style_validity_matches_rules(year: int, month: int, seq: int, width: int) -> None:
    yy = year % 100
    text = f"{yy:02d}{month:02d}.{seq:0{width}d}"
    digits_ok = len(text.split(".")[1]) == (4 if yy < 15 else 5)
    date_ok = 1 <= month <= 12 and (yy, month) >= (7, 4)
    valid = digits_ok and date_ok and seq != 0
    assert (canonical_paper_id(text) is not None) is valid


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000))
@example("\x00")
@example("https://")
@example("https://arxiv.org:99999/abs/2401.12345")
@example("https://[::1]/abs/2401.12345")
def test_never_raises_and_is_idempotent(value: str) -> None:
    result = canonical_paper_id(value)
    assert result is None or canonical_paper_id(result) == result
    assert isinstance(is_paper_url(value), bool)


URLISH_ALPHABET = string.ascii_letters + string.digits + "/.:?#&=%-_~@[]\\ v"


@given(
    scheme=st.sampled_from(["http://", "https://", "", "ftp://", "HTTPS://"]),
    host=st.sampled_from((*SUPPORTED_HOSTS, "example.com", "arxiv.org.", "")),
    path=st.text(alphabet=URLISH_ALPHABET, max_size=80),
)
def test_urlish_never_raises_and_is_idempotent(scheme: str, host: str, path: str) -> None:
    value = f"{scheme}{host}{path}"
    result = canonical_paper_id(value)
    assert result is None or canonical_paper_id(result) == result
    if is_paper_url(value):
        assert result is not None


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=200))
def test_text_without_digits_is_rejected(value: str) -> None:
    # Every id has a digit except OpenReview's and PwC's, which need their namespace or host.
    if value.strip().lower().startswith(("openreview:", "pwc:")) or any(
        host in value.lower() for host in ("openreview.net", "paperswithcode.com")
    ):
        return
    assert canonical_paper_id(value) is None


@given(
    path=st.sampled_from(
        ["/list/cs.LG/new", "/list/astro-ph/2024-01", "/search/?query=x", "/", "/a/smith_j_1"]
    ),
    host=st.sampled_from(["arxiv.org", "www.arxiv.org", "export.arxiv.org"]),
)
def test_arxiv_non_paper_pages_are_rejected(path: str, host: str) -> None:
    url = f"https://{host}{path}"
    assert canonical_paper_id(url) is None
    assert is_paper_url(url) is False


@given(pair=arxiv_ids(), host=st.text(alphabet=string.ascii_lowercase + ".-", min_size=1))
def test_unsupported_hosts_are_rejected(pair: tuple[str, str], host: str) -> None:
    if host.lower() in SUPPORTED_HOSTS:
        return
    url = f"https://{host}/abs/{pair[0]}"
    assert canonical_paper_id(url) is None
    assert is_paper_url(url) is False
