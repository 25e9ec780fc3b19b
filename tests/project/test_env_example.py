"""Every environment variable the settings read is documented in .env.example."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_variable_is_in_env_example():
    settings_src = (ROOT / "lotteryinvoice" / "settings.py").read_text()
    read = set(re.findall(r'\.(?:str|bool|int|list|db|float)\(\s*"([A-Z0-9_]+)"', settings_src))
    read |= set(
        re.findall(
            r'"([A-Z][A-Z0-9_]+)",\n', settings_src.split("PRODUCTION_REQUIRED")[1].split(")")[0]
        )
    )
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read, "no variables found: the regex no longer matches settings.py"
    assert read - documented == set(), f"undocumented: {sorted(read - documented)}"
    assert documented - read - {"DJANGO_SETTINGS_MODULE"} == set(), (
        f"documented but unused: {sorted(documented - read)}"
    )


def test_readme_explains_every_variable():
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    missing = sorted(name for name in documented if f"`{name}`" not in readme)
    assert not missing, f"README.md does not explain: {missing}"
