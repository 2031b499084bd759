"""The attack benchmark's tables: ours and kube-apiserver's figures side by side."""

from __future__ import annotations

from collections import Counter

from benchmarks.attacks import AttackResult, Results, WatchResult, render, shown_command, side_by_side, watch_rows
from benchmarks.stats import Summary


def attack(who: str, target: str, idle: float, during: float, rounds: int = 1) -> AttackResult:
    def summary(p99: float) -> Summary:
        return Summary(count=10, p50=p99 / 2, p99=p99, total=p99 * 10)
    return AttackResult(who, target, 150, 100 << 20, 150 << 20, 101 << 20, Counter({"401": 150}),
                        summary(idle), summary(during), summary(idle), summary(during * 2), rounds)


def test_each_attack_row_puts_kube_apiservers_ratio_next_to_ours() -> None:
    rows = side_by_side([attack("stranger", "mcs-apiserver", 0.010, 0.200),
                         attack("stranger", "kube-apiserver", 0.005, 0.050),
                         attack("holder", "mcs-apiserver", 0.010, 0.020)])
    assert rows[2] == "| stranger | 20.0x, 10 GETs | 10.0x, 10 GETs | 40.0x, 10 GETs | 20.0x, 10 GETs |"
    assert rows[3] == "| holder | 2.0x, 10 GETs | n/a | 4.0x, 10 GETs | n/a |"
    assert len(rows) == 4


def test_the_watch_table_gives_each_targets_growth_per_watch_its_alpn_choice_and_connections() -> None:
    rows = watch_rows([WatchResult("kube-apiserver", "h2", 1000, 300 << 20, (300 << 20) + 1000 * 30 * 1024,
                                   301 << 20, 0.25),
                       WatchResult("mcs-apiserver through kube-apiserver", "h2", 1000, 100 << 20,
                                   (100 << 20) + 1000 * 19 * 1024, 101 << 20, 0.1, connections=1)])
    assert rows[2].startswith("| kube-apiserver | h2 | 1000 | 1000 | 300.0 MiB |")  # a connection per watch
    assert "| 30.0 KiB | 250 ms |" in rows[2]
    assert rows[3].startswith("| mcs-apiserver through kube-apiserver | h2 | 1000 | 1 | 100.0 MiB |")
    assert "| 19.0 KiB | 100 ms |" in rows[3]


def test_the_section_has_both_targets_rows_and_the_side_by_side_table() -> None:
    results = Results(attacks=[attack("stranger", "mcs-apiserver", 0.010, 0.200),
                               attack("stranger", "kube-apiserver", 0.005, 0.050)],
                      watches=[WatchResult("mcs-apiserver", "none", 10, 1 << 20, 2 << 20, 1 << 20, 0.1)],
                      watch_parts={"TCP": 11 * 1024, "TLS": 33 * 1024})
    text = render(results, "python3 -m benchmarks.attacks")
    assert "| stranger | kube-apiserver | 150 |" in text and "| stranger | mcs-apiserver | 150 |" in text
    assert "| stranger | 20.0x, 10 GETs | 10.0x, 10 GETs |" in text
    assert "**11.0 KiB per watch over plain TCP**" in text


def test_a_row_that_pools_several_floods_says_how_many() -> None:
    results = Results(attacks=[attack("stranger", "mcs-apiserver", 0.010, 0.200, rounds=4),
                               attack("holder", "mcs-apiserver", 0.010, 0.020)])
    text = render(results, "python3 -m benchmarks.attacks")
    assert "| stranger | mcs-apiserver | 4 x 150 |" in text
    assert "| holder | mcs-apiserver | 150 |" in text


def test_the_shown_command_keeps_each_flag_and_names_what_a_temporary_path_stood_for() -> None:
    assert shown_command(["--state-dir", "/tmp/cs1", "--output", "/tmp/out.md", "--rounds", "2"]) == (
        "python3 -m benchmarks.attacks --state-dir DIR --output FILE --rounds 2")
    assert shown_command(["--state-dir=/tmp/cs1"]) == "python3 -m benchmarks.attacks --state-dir=DIR"
    assert shown_command([]) == "python3 -m benchmarks.attacks"
