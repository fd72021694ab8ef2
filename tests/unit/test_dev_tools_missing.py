"""`quantgate dev` and `quantgate simulate` without their development packages (as in the runtime
image, which leaves them out): one line saying what is missing and how to get it, exit 2."""

import sys

import pytest

from quantgate.cli import main


@pytest.mark.parametrize("argv, package", [(["dev", "status"], "quantgate.dev"),
                                           (["simulate", "-f", "variants.yaml"], "quantgate.simulate")])
def test_a_missing_dev_tool_is_one_line_with_the_fix(argv, package, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, package, None)  # import of it fails as if it were not installed
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and package in err and "pip install -e '.[dev]'" in err


def test_an_error_inside_a_present_dev_tool_is_not_mistaken_for_a_missing_one(monkeypatch, tmp_path):
    from quantgate.commands import _dev_tools

    def broken(args):
        import quantgate_no_such_module  # noqa: F401

    with pytest.raises(ModuleNotFoundError):
        _dev_tools.needs_dev_tools(broken)(None)
