"""The package installs and its commands answer."""

from companion.cli.main import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "seedward" in capsys.readouterr().out
