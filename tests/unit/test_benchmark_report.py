"""BENCHMARKS.md: the main run and the DNS run each rewrite their own part and keep the other's."""

from __future__ import annotations

from pathlib import Path

from benchmarks.dns import latencies
from benchmarks.report import DNS_MARKER, MARKER, Section, write, write_dns


def section(title: str) -> list[Section]:
    table = Section(title, ["a"])
    table.rows.append([table.check(title, "1", "<= 2", True)])
    return [table]


def test_the_dns_part_survives_a_main_run_and_the_main_part_a_dns_run(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Intro by hand\n\n{MARKER}\n\nold main\n")
    write_dns(path, "## DNS run 1", section("dns one"))
    write(path, "## Main run 2", section("main two"))
    text = path.read_text()
    assert text.startswith("# Intro by hand\n")
    assert "## Main run 2" in text and "old main" not in text
    assert text.index(MARKER) < text.index("## Main run 2") < text.index(DNS_MARKER) < text.index("## DNS run 1")
    write_dns(path, "## DNS run 3", section("dns three"))
    text = path.read_text()
    assert "## DNS run 1" not in text and "## DNS run 3" in text and "## Main run 2" in text
    assert text.count(DNS_MARKER) == 1 and text.count(MARKER) == 1


def test_dnsperf_verbose_lines_give_one_latency_per_query() -> None:
    output = ("[Status] Sending queries\n> NOERROR web.demo.svc.clusterset.local A 0.000229\n"
              "> NXDOMAIN nope.clusterset.local A 0.001500\n[Timeout] Query timed out: msg id 3\n")
    assert latencies(output) == [0.000229, 0.0015]
