"""The selection rule: smallest promotable variant by size, ties by the lower average drop."""

from dataclasses import dataclass

import pytest

from quantgate.decision.selection import select, size_bytes


@dataclass
class Row:
    name: str
    size: str | None
    promotable: bool
    average_drop: float


@pytest.mark.parametrize("text,value", [("8GB", 8e9), ("8 GB", 8e9), ("4.6Gi", 4.6 * 2**30), ("16.1 GiB", 16.1 * 2**30),
                                        ("512Mi", 512 * 2**20), ("7340032000", 7340032000.0), ("1.5TB", 1.5e12)])
def test_sizes(text, value):
    assert size_bytes(text) == pytest.approx(value)


@pytest.mark.parametrize("text", [None, "", "big", "8 parsecs", "-3GB", "GB"])
def test_unreadable_sizes(text):
    assert size_bytes(text) is None


def test_smallest_promotable_wins_and_ties_go_to_the_lower_drop():
    rows = [Row("int8", "8GB", True, 0.8), Row("int4a", "4.9GB", True, 2.0), Row("int4b", "4.9 GB", True, 1.5),
            Row("int3", "3GB", False, 0.1)]
    assert select(rows).name == "int4b"
    assert "4.9 GB" in select(rows).reason


def test_binary_and_decimal_units_compare_by_bytes():
    # 8 GiB (8.59e9 bytes) is larger than 8.5 GB
    assert select([Row("a", "8Gi", True, 0.1), Row("b", "8.5GB", True, 0.1)]).name == "b"


def test_none_when_nothing_is_promotable_or_sized():
    assert select([Row("a", "1GB", False, 9)]).name is None
    only_unsized = select([Row("a", None, True, 0.1)])
    assert only_unsized.name is None and "not ranked: a" in only_unsized.reason
