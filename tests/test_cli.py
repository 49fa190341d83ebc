"""The ``mtt-nc`` command line: a sub-command whose module cannot be imported stays
listed, with the reason, and says so when run."""

from metatrain_nc import cli


def test_a_command_that_cannot_be_imported_is_listed_and_explains(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "broken_evaluator.py").write_text(
        "raise RuntimeError('missing compiled extension')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.BUILTIN_COMMANDS, "broken", "broken_evaluator")

    help_text = cli.build_parser().format_help()
    assert "broken" in help_text and "unavailable" in help_text

    code = cli.main(["broken", "--any", "option"])
    err = capsys.readouterr().err
    assert code == 2
    assert "mtt-nc broken: error: this command is unavailable" in err
    assert "missing compiled extension" in err
    # the other commands still work
    parser = cli.build_parser()
    assert parser.parse_args(["md", "m.pt", "s.xyz", "-o", "x"]).command == "md"
