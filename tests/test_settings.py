"""The settings as declared once (`webapp.env`): read by their own names, and each one in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from webapp import env
from webapp.settings import Settings

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_settings() -> list[str]:
    """The names in the first column of the README's tables headed `| setting |`."""
    names: list[str] = []
    in_table = False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("| setting |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table and not line.startswith("|---"):
            names += re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1])
    return names


def test_every_setting_is_in_the_readme() -> None:
    missing = sorted(set(env.environment_names(Settings)) - set(readme_settings()))
    assert not missing, f"settings the README's tables don't list: {missing}"


def test_every_row_of_the_readme_is_a_setting() -> None:
    unknown = sorted(set(readme_settings()) - set(env.environment_names(Settings)))
    assert not unknown, f"README rows that name no setting: {unknown}"


def test_the_readme_is_read_at_all() -> None:
    names = readme_settings()
    assert len(names) > 60 and "PROVIDERS" in names and "VERIFY_TOKEN_LENGTH" in names and "MAX_HEADERS" in names


def test_every_setting_has_a_doc() -> None:
    assert all(declared.doc.strip() for _, _, _, declared in env.declarations(Settings))


def test_each_environment_name_is_its_field_upper_cased() -> None:
    names = env.environment_names(Settings)
    assert len(names) == len(set(names))
    assert "SESSION_MAX_AGE" in names and "VERIFY_MAX_ATTEMPTS" in names and "CALL" not in names


def test_an_unset_variable_keeps_the_default_and_a_set_one_is_cast_by_its_type() -> None:
    read = Settings.from_env(
        {
            "SESSION_MAX_AGE": "60",
            "CIRCUIT_SURGE": "2.5",
            "ALLOW_VOIP": "false",
            "VERIFY_TOKEN_LENGTH": "8",
            "COOKIE_SECURE": "auto",
            "DENIED_COUNTRIES": "ru, by,",
        },
        env_file=None,
    )
    assert (read.session_max_age, read.circuit_surge, read.allow_voip) == (60, 2.5, False)
    assert read.call.token_length == 8 and read.call.template == Settings().call.template
    assert read.cookie_secure is None and read.denied_countries == ("RU", "BY")
    assert read.resend_cooldown == Settings().resend_cooldown


def test_an_env_file_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("SESSION_MAX_AGE=120\nRESEND_COOLDOWN=45\n", encoding="utf-8")
    read = Settings.from_env({"RESEND_COOLDOWN": "50"}, env_file=path)
    assert (read.session_max_age, read.resend_cooldown) == (120, 50)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("COOKIE_SECURE", "sometimes", "COOKIE_SECURE must be true, false or auto, not 'sometimes'"),
        ("SESSION_MAX_AGE", "soon", "Config 'SESSION_MAX_AGE' has value 'soon'. Not a valid int."),
        ("ALLOW_VOIP", "maybe", "Config 'ALLOW_VOIP' has value 'maybe'. Not a valid bool."),
    ],
)
def test_a_value_its_type_cannot_hold_is_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings.from_env({name: value}, env_file=None)


def test_bounds_are_checked_on_settings_built_in_code_too() -> None:
    with pytest.raises(ValueError, match="MAX_HEADERS must be between 10 and 1000"):
        Settings(max_headers=5).validate()
