"""The README is what an MSP reads first: it opens with the two commands and lists every setting."""
from pathlib import Path

from shared.settings import SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_the_readme_opens_with_the_two_commands():
    opening = README.split("\n\n", 2)[1]
    assert "./dev demo" in opening and "./dev test" in opening


def test_the_readme_lists_every_setting_with_its_default():
    for name, (default, _) in SETTINGS.items():
        row = next((line for line in README.splitlines() if line.startswith(f"| `{name}` |")), None)
        assert row is not None, f"{name} is not in the README's settings table"
        if default:
            assert f"`{default}`" in row, f"{name}'s default {default} is not in the README"
