"""x509-limbo's SERVER cases against :func:`zfw.tls.verify.verify_server`.

The cases are data (``limbo/limbo-server.json.xz``, see ``limbo/README.md``); each
maps onto one call: trusted roots, untrusted intermediates, the peer certificate,
the expected peer name and the validation time (absent: now). A case agrees with
its expected verdict unless ``limbo/divergences.toml`` lists it; a listed case
that agrees fails too, so the list stays true. Cases that need an input the
verifier does not take are skipped with the reason. docs/tls.md's table is made
from the same data: ``python -m tests.tls.test_limbo`` rewrites it and prints
the cases to add to or take from the list.
"""

from __future__ import annotations

import datetime
import json
import lzma
import tomllib
import warnings
from pathlib import Path
from typing import Any

import cryptography
import pytest
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from zfw.tls.verify import Verdict, verify_server

# The expected divergences were measured with cryptography 50; another release's
# verifier gives other verdicts (and 43, the oldest setup.cfg admits, does not finish
# one pathological chain), so the suite runs against the releases it was measured on.
if tuple(int(p) for p in cryptography.__version__.split(".")[:2]) < (50, 0):
    pytest.skip(
        f"the divergences were measured with cryptography 50, not {cryptography.__version__}",
        allow_module_level=True,
    )

HERE = Path(__file__).parent / "limbo"
DOCS = Path(__file__).parents[2] / "docs" / "tls.md"
BEGIN, END = "<!-- limbo table: begin -->", "<!-- limbo table: end -->"

CASES: list[dict[str, Any]] = json.loads(
    lzma.decompress((HERE / "limbo-server.json.xz").read_bytes())
)["testcases"]
CAUSES: list[dict[str, Any]] = tomllib.loads((HERE / "divergences.toml").read_text())["cause"]
DIVERGENT: dict[str, str] = {case: cause["title"] for cause in CAUSES for case in cause["cases"]}


def skip_reason(case: dict[str, Any]) -> str | None:
    """Why ``case`` cannot be put to ``verify_server`` (None: it can)."""
    if case["crls"] or "has-crl" in case["features"]:
        return "revocation lists: verify_server takes none (zfw does not check revocation)"
    if case["max_chain_depth"] is not None:
        return "a maximum chain depth: verify_server takes no such limit"
    if case["signature_algorithms"]:
        return "a choice of signature algorithms: verify_server takes none"
    if case["extended_key_usage"] not in ([], ["serverAuth"]):
        return "an extendedKeyUsage other than serverAuth: verify_server checks serverAuth only"
    return None


def run(case: dict[str, Any]) -> Verdict:
    """The verdict of ``verify_server`` on ``case``."""

    def load(pem: str) -> x509.Certificate:
        with warnings.catch_warnings():  # serial numbers of zero, which some cases hold
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_pem_x509_certificate(pem.encode())

    at = case["validation_time"]
    when = datetime.datetime.fromisoformat(at) if at else datetime.datetime.now(datetime.UTC)
    peer = case["expected_peer_name"]
    return verify_server(
        load(case["peer_certificate"]),
        [load(c) for c in case["untrusted_intermediates"]],
        [load(c) for c in case["trusted_certs"]],
        peer["value"] if peer else "",
        when,
        check_name=peer is not None,
    )


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case: dict[str, Any]) -> None:
    reason = skip_reason(case)
    if reason:
        pytest.skip(reason)
    verdict = run(case)
    agrees = verdict.ok == (case["expected_result"] == "SUCCESS")
    if case["id"] in DIVERGENT:
        assert not agrees, f"listed in divergences.toml ({DIVERGENT[case['id']]}) but agrees"
    else:
        assert agrees, f"expected {case['expected_result']}, got {verdict}\n{case['description']}"


def disagreements() -> tuple[list[str], list[str]]:
    """Cases that diverge but are not listed, and listed cases that agree."""
    new, gone = [], []
    for case in CASES:
        if skip_reason(case) is None:
            agrees = run(case).ok == (case["expected_result"] == "SUCCESS")
            if not agrees and case["id"] not in DIVERGENT:
                new.append(case["id"])
            elif agrees and case["id"] in DIVERGENT:
                gone.append(case["id"])
    return new, gone


def test_divergences_are_cases_that_run() -> None:
    ids = {c["id"]: c for c in CASES}
    listed = [case for cause in CAUSES for case in cause["cases"]]
    assert len(listed) == len(set(listed)), "a case is listed twice"
    for case in listed:
        assert case in ids, f"{case}: not an x509-limbo SERVER case"
        assert skip_reason(ids[case]) is None, f"{case}: skipped, so not a divergence"


def table() -> str:
    """docs/tls.md's table: counts, divergences by cause, skips by reason."""
    skips: dict[str, int] = {}
    for case in CASES:
        reason = skip_reason(case)
        if reason:
            skips[reason] = skips.get(reason, 0) + 1
    ran = len(CASES) - sum(skips.values())
    lines = [
        "| x509-limbo SERVER cases | count |",
        "|---|---|",
        f"| in the suite | {len(CASES)} |",
        f"| run | {ran} |",
        f"| agreeing with the expected verdict | {ran - len(DIVERGENT)} |",
        f"| diverging (listed below) | {len(DIVERGENT)} |",
        f"| skipped | {sum(skips.values())} |",
        "",
        "| diverging: cause | cases | why |",
        "|---|---|---|",
    ]
    for cause in CAUSES:
        cases = ", ".join(f"`{c}`" for c in cause["cases"])
        lines.append(f"| {cause['title']} ({len(cause['cases'])}) | {cases} | {cause['why']} |")
    lines += ["", "| skipped: reason | cases |", "|---|---|"]
    lines += [f"| {reason} | {n} |" for reason, n in skips.items()]
    return "\n".join(lines)


def _docs() -> tuple[str, str, str]:
    """docs/tls.md as (before the table, the table, after it)."""
    text = DOCS.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start], text[start:end].strip(), text[end:]


def test_docs_table() -> None:
    assert _docs()[1] == table(), "docs/tls.md's table is stale: python -m tests.tls.test_limbo"


if __name__ == "__main__":
    # After a change to the verifier: which cases to add to or take from
    # divergences.toml; then docs/tls.md's table rewritten from it.
    new, gone = disagreements()
    for case in new:
        print(f"diverges, not listed: {case}: {run(next(c for c in CASES if c['id'] == case))}")
    for case in gone:
        print(f"listed, agrees: {case}")
    before, _, after = _docs()
    DOCS.write_text(f"{before}\n{table()}\n{after}")
