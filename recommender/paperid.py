"""Canonical paper ids: one namespaced string per paper, from any URL or id a user may hold.

Every event, trending score and recommendation is keyed by the string this module returns, so
two URLs of the same paper (``/abs/2401.12345v2`` and ``/pdf/2401.12345.pdf``) must give the same
id and a page that is not a paper must give none. The canonical forms are::

    arxiv:2401.12345        arxiv:hep-th/9901001      doi:10.1145/3292500.3330701
    openreview:rJXMpikCZ    acl:2020.acl-main.1       acl:P19-1001
    pwc:searching-for-mobilenetv3

The extension carries a JavaScript twin of this module (``extension/src/paperid.js``); both are
held to the same cases in ``tests/vectors/paper_ids.json``, so a change here needs the same change
there. arXiv's identifier rules follow arXiv's own parser (``arxiv-base``,
``arxiv/identifier/__init__.py``), made stricter where the product needs one answer: the digit
count must already be canonical (no re-padding), and an old-style archive must be a real one.

Inputs are bounded to :data:`MAX_INPUT_LENGTH` characters and must be printable ASCII once
surrounding whitespace is stripped; every regular expression here is linear. Nothing raises:
anything that is not recognised gives ``None``.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

__all__ = ["MAX_INPUT_LENGTH", "SUPPORTED_HOSTS", "canonical_paper_id", "is_paper_url"]

MAX_INPUT_LENGTH = 2048

_ARXIV_HOSTS = ("arxiv.org", "www.arxiv.org", "export.arxiv.org", "browse.arxiv.org")
_HF_HOSTS = ("huggingface.co", "www.huggingface.co", "hf.co")
_ALPHAXIV_HOSTS = ("alphaxiv.org", "www.alphaxiv.org")
_AR5IV_HOSTS = ("ar5iv.org", "www.ar5iv.org", "ar5iv.labs.arxiv.org")
_DOI_HOSTS = ("doi.org", "dx.doi.org", "www.doi.org")
_OPENREVIEW_HOSTS = ("openreview.net", "www.openreview.net")
_ACL_HOSTS = ("aclanthology.org", "www.aclanthology.org")
_ACLWEB_HOSTS = ("aclweb.org", "www.aclweb.org")
_PWC_HOSTS = ("paperswithcode.com", "www.paperswithcode.com")

SUPPORTED_HOSTS: tuple[str, ...] = (
    _ARXIV_HOSTS
    + _HF_HOSTS
    + _ALPHAXIV_HOSTS
    + _AR5IV_HOSTS
    + _DOI_HOSTS
    + _OPENREVIEW_HOSTS
    + _ACL_HOSTS
    + _ACLWEB_HOSTS
    + _PWC_HOSTS
)
"""Host names (lower case, exact match) whose URLs this module understands."""

# Archives that minted old-style ids (1991 to 2007-03); ``q-fin`` and ``stat`` began after.
# fmt: off
_OLD_ARCHIVES = frozenset(
    (
        "acc-phys", "adap-org", "alg-geom", "ao-sci", "astro-ph", "atom-ph", "bayes-an",
        "chao-dyn", "chem-ph", "cmp-lg", "comp-gas", "cond-mat", "cs", "dg-ga", "funct-an",
        "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math", "math-ph", "mtrl-th", "nlin",
        "nucl-ex", "nucl-th", "patt-sol", "physics", "plasm-ph", "q-alg", "q-bio", "quant-ph",
        "solv-int", "supr-con",
    )
)
# fmt: on

_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_WHITESPACE = " \t\n\r\f\v"
_NEW_ARXIV = re.compile(r"([0-9]{2})([0-9]{2})\.([0-9]{4,5})(?:v[1-9][0-9]*)?")
_OLD_ARXIV = re.compile(
    r"([A-Za-z]+(?:-[A-Za-z]+)?)(?:\.[A-Za-z-]{2,})?/([0-9]{2})([0-9]{2})([0-9]{3})"
    r"(?:v[1-9][0-9]*)?"
)
_DOI = re.compile(r"10\.[0-9]{4,9}(?:\.[0-9]+)*/[\x21-\x7e]+")
_OPENREVIEW_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ACL_ID = re.compile(
    r"[A-Z][0-9]{2}-[0-9]{4}|20[0-9]{2}\.[a-z0-9]+(?:-[a-z0-9]+)*\.(?:0|[1-9][0-9]{0,3})"
)
_PWC_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_NAMESPACE = re.compile(r"(arxiv|doi|openreview|acl|pwc):", re.IGNORECASE)
_HTTP_URL = re.compile(r"https?://[A-Za-z0-9.-]+(?::[0-9]{0,5})?(?:[/?#]|$)", re.IGNORECASE)
_HTTP_SCHEME = re.compile(r"https?://", re.IGNORECASE)
_BARE_HOST = re.compile(r"[A-Za-z0-9.-]+(?=[/?#]|$)")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_DOT_SEGMENTS = frozenset({".", "..", "%2e", ".%2e", "%2e.", "%2e%2e"})
_ARXIV_URL_PREFIXES = ("abs", "pdf", "html", "format", "ps", "src")


def canonical_paper_id(value: str) -> str | None:
    """Return the canonical, namespaced id of the paper that ``value`` names, or ``None``.

    Parameters
    ----------
    value : str
        A URL (``https://arxiv.org/pdf/2401.12345v2``, ``doi.org/10.1145/...``, scheme optional
        for supported hosts), a bare id (``2401.12345v2``, ``arXiv:hep-th/9901001``,
        ``10.1145/...``) or a namespaced id (``openreview:rJXMpikCZ``). Any other type, a string
        over :data:`MAX_INPUT_LENGTH` characters, or anything not recognised gives ``None``.

    Returns
    -------
    str or None
        ``"<namespace>:<id>"``; canonicalising the result again returns it unchanged.
    """
    text = _clean(value)
    if text is None:
        return None
    if _HTTP_SCHEME.match(text):
        return _from_url(text)
    namespaced = _NAMESPACE.match(text)
    if namespaced:
        return _from_namespaced(namespaced.group(1).lower(), text[namespaced.end() :])
    if _bare_supported_host(text):
        return _from_url("https://" + text)
    return _from_arxiv_id(text) or _from_doi(text)


def is_paper_url(url: str) -> bool:
    """Tell whether ``url`` is the URL of one paper's page (or PDF) on a supported host.

    ``https://arxiv.org/abs/2401.12345`` is; ``https://arxiv.org/list/cs.LG/new``, a page on
    an unsupported host, and a bare id such as ``2401.12345`` are not.
    """
    text = _clean(url)
    if text is None:
        return False
    if _HTTP_SCHEME.match(text):
        return _from_url(text) is not None
    if _bare_supported_host(text):
        return _from_url("https://" + text) is not None
    return False


def _clean(value: object) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_INPUT_LENGTH:
        return None
    text = value.strip(_WHITESPACE)
    if not text or not _PRINTABLE_ASCII.fullmatch(text) or "\\" in text:
        return None
    return text


def _bare_supported_host(text: str) -> bool:
    host = _BARE_HOST.match(text)
    return host is not None and host.group(0).lower() in SUPPORTED_HOSTS


def _from_namespaced(namespace: str, rest: str) -> str | None:
    if namespace == "arxiv":
        return _from_arxiv_id(rest)
    if namespace == "doi":
        return _from_doi(rest)
    if namespace == "openreview":
        return f"openreview:{rest}" if _OPENREVIEW_ID.fullmatch(rest) else None
    if namespace == "acl":
        return f"acl:{rest}" if _ACL_ID.fullmatch(rest) else None
    return f"pwc:{rest}" if _PWC_SLUG.fullmatch(rest) else None


def _from_arxiv_id(text: str) -> str | None:
    """Canonicalise a bare arXiv id (no ``arXiv:`` prefix), dropping any version."""
    new = _NEW_ARXIV.fullmatch(text)
    if new:
        yy, mm, seq = int(new.group(1)), int(new.group(2)), new.group(3)
        digits = 4 if yy < 15 else 5
        if not 1 <= mm <= 12 or (yy, mm) < (7, 4) or len(seq) != digits or int(seq) == 0:
            return None
        return f"arxiv:{new.group(1)}{new.group(2)}.{seq}"
    old = _OLD_ARXIV.fullmatch(text)
    if old:
        archive = old.group(1).lower()
        yy, mm, num = int(old.group(2)), int(old.group(3)), old.group(4)
        year = 1900 + yy if yy >= 91 else 2000 + yy
        if (
            archive not in _OLD_ARCHIVES
            or not 1 <= mm <= 12
            or not (1991, 1) <= (year, mm) <= (2007, 3)
            or int(num) == 0
        ):
            return None
        return f"arxiv:{archive}/{old.group(2)}{old.group(3)}{num}"
    return None


def _from_doi(text: str) -> str | None:
    """Canonicalise a DOI (``doi:`` already removed); arXiv's own DOIs become arXiv ids."""
    if not _DOI.fullmatch(text):
        return None
    doi = text.lower()
    if doi.startswith("10.48550/"):
        rest = text[len("10.48550/") :]
        return _from_arxiv_id(rest[6:]) if rest[:6].lower() == "arxiv." else None
    return f"doi:{doi}"


def _percent_decode_ascii(text: str) -> str | None:
    """Decode ``%XX`` escapes that stand for ASCII; a non-ASCII escape gives ``None``."""
    if any(int(code, 16) > 0x7F for code in _PERCENT.findall(text)):
        return None
    decoded = _PERCENT.sub(lambda m: chr(int(m.group(1), 16)), text)
    return decoded if _PRINTABLE_ASCII.fullmatch(decoded) else None


def _query_param(query: str, name: str) -> str | None:
    """First value of ``name`` in a query string, percent-decoded (``+`` is left alone)."""
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        if sep and key == name:
            return _percent_decode_ascii(value) if value else None
    return None


def _from_url(text: str) -> str | None:
    if not _HTTP_URL.match(text):
        return None
    after_scheme = text.split("://", 1)[1]
    authority_end = len(after_scheme)
    for stop in "/?#":
        index = after_scheme.find(stop)
        if index != -1:
            authority_end = min(authority_end, index)
    raw_path = after_scheme[authority_end:].split("#", 1)[0].split("?", 1)[0]
    # A browser resolves "." and ".." segments; refuse them rather than guess the same way.
    if any(segment.lower() in _DOT_SEGMENTS for segment in raw_path.split("/")):
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        return None
    host = (parts.hostname or "").lower()
    return _from_host_path(host, parts.path or "/", parts.query)


def _from_host_path(host: str, path: str, query: str) -> str | None:
    if host in _ARXIV_HOSTS:
        return _from_arxiv_path(path, query)
    if host in _HF_HOSTS:
        return _arxiv_after(path, ("papers",))
    if host in _ALPHAXIV_HOSTS:
        return _arxiv_after(path, ("abs", "overview"))
    if host in _AR5IV_HOSTS:
        return _arxiv_after(path, ("abs", "html"), subpath=True)
    if host in _DOI_HOSTS:
        decoded = _percent_decode_ascii(path[1:])
        return _from_doi(decoded) if decoded else None
    if host in _OPENREVIEW_HOSTS:
        if path not in ("/forum", "/pdf"):
            return None
        forum = _query_param(query, "id")
        return _from_namespaced("openreview", forum) if forum else None
    if host in _ACL_HOSTS:
        return _acl_from_path(path[1:])
    if host in _ACLWEB_HOSTS:
        if not path.startswith("/anthology/"):
            return None
        return _acl_from_path(path[len("/anthology/") :])
    if host in _PWC_HOSTS and path.startswith("/paper/"):
        slug = path[len("/paper/") :]
        return _from_namespaced("pwc", slug.removesuffix("/"))
    return None


def _from_arxiv_path(path: str, query: str) -> str | None:
    if path in ("/abs", "/abs/"):
        legacy = _query_param(query, "id")
        return _from_arxiv_id(legacy) if legacy else None
    segments = path.split("/")
    kind = segments[1] if len(segments) > 2 else ""
    if kind not in _ARXIV_URL_PREFIXES:
        return None
    rest = path[len(kind) + 2 :]
    if kind == "html":
        return _arxiv_with_subpath(rest)
    if kind == "pdf":
        rest = rest.removesuffix(".pdf")
    return _from_arxiv_id(rest.removesuffix("/"))


def _arxiv_after(path: str, kinds: tuple[str, ...], subpath: bool = False) -> str | None:
    segments = path.split("/")
    if len(segments) < 3 or segments[1] not in kinds:
        return None
    rest = path[len(segments[1]) + 2 :]
    if subpath:
        return _arxiv_with_subpath(rest)
    return _from_arxiv_id(rest.removesuffix("/"))


def _arxiv_with_subpath(rest: str) -> str | None:
    """An id (new style: one segment, old style: two) followed by anything, as in ``/html/``."""
    segments = rest.split("/")
    return _from_arxiv_id(segments[0]) or (
        _from_arxiv_id("/".join(segments[:2])) if len(segments) > 1 else None
    )


def _acl_from_path(rest: str) -> str | None:
    rest = rest[: -len(".pdf")] if rest.endswith(".pdf") else rest.removesuffix("/")
    return _from_namespaced("acl", rest)
