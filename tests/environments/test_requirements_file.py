"""Reading requirements files into specs, and answering "does the server already have this?"."""

from __future__ import annotations

from pathlib import Path

import pytest

from sabio.environments import EnvironmentBuilder, EnvironmentBuildError, EnvironmentSpec
from sabio.environments.requirements import parse_requirements_file
from sabio.environments.server import satisfied_by_server


@pytest.fixture
def code(tmp_path: Path) -> Path:
    directory = tmp_path / "model" / "code"
    directory.mkdir(parents=True)
    return directory


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_comments_blank_lines_continuations_and_includes(code: Path) -> None:
    _write(code / "reqs" / "base.txt", "numpy>=1.26\n-r more.txt\n")
    _write(code / "reqs" / "more.txt", "joblib\n")
    requirements = _write(
        code / "requirements.txt",
        "# serving extras\n"
        "\n"
        "roman==4.2   # numerals\n"
        "   \n"
        "scikit-learn \\\n"
        "  >=1.0\n"
        "-r reqs/base.txt\n"
        'typing-extensions; python_version < "3.12"\n',
    )

    spec = EnvironmentBuilder(code / "envs").spec_from_requirements_file(requirements)

    assert spec.requirements == (
        "roman==4.2",
        "scikit-learn   >=1.0",
        "numpy>=1.26",
        "joblib",
        'typing-extensions; python_version < "3.12"',
    )
    assert spec.index_url is None
    assert spec.find_links == ()


def test_index_options_and_local_files(code: Path) -> None:
    wheel = _write(code / "wheels" / "demo-1.0-py3-none-any.whl", "")
    requirements = _write(
        code / "requirements.txt",
        "--index-url https://mirror.example/simple\n"
        "--extra-index-url=https://extra.example/simple\n"
        "--find-links ./wheels\n"
        "-f https://download.example/wheels\n"
        "./wheels/demo-1.0-py3-none-any.whl\n"
        "demo @ file:./wheels/demo-1.0-py3-none-any.whl\n",
    )

    spec = parse_requirements_file(requirements)

    assert spec.index_url == "https://mirror.example/simple"
    assert spec.extra_index_urls == ("https://extra.example/simple",)
    assert spec.find_links == (str(code / "wheels"), "https://download.example/wheels")
    assert spec.requirements == (str(wheel), f"demo @ {wheel.as_uri()}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-e .\n", "Editable installs"),
        ("--editable=git+https://example.org/x.git\n", "Editable installs"),
        ("roman\n--no-binary :all:\n", "requirements.txt:2: pip option --no-binary"),
        ("-c constraints.txt\n", "pip option -c"),
        ("roman==4.2 --hash=sha256:abc\n", "--hash"),
        ("-r ../secrets.txt\n", "outside the directory"),
        ("../other/pkg-1.0-py3-none-any.whl\n", "outside the directory"),
        ("demo @ file:///etc/passwd\n", "outside the directory"),
        ("--find-links /opt\n", "outside the directory"),
        ("-r missing.txt\n", "does not exist"),
        ("./missing-1.0-py3-none-any.whl\n", "does not exist"),
        ("roman=4\n", "requirements.txt:1: Invalid requirement"),
        ("--index-url\n", "needs exactly one value"),
    ],
)
def test_rejected_lines(code: Path, text: str, message: str) -> None:
    _write(code.parent / "secrets.txt", "roman\n")
    requirements = _write(code / "requirements.txt", text)

    with pytest.raises(EnvironmentBuildError) as caught:
        parse_requirements_file(requirements)

    assert message in caught.value.message
    assert caught.value.code == "EnvironmentBuildFailed"
    assert str(code.parent) not in caught.value.message.split(":", 1)[0]


def test_include_cycle_is_rejected(code: Path) -> None:
    _write(code / "a.txt", "-r b.txt\n")
    _write(code / "b.txt", "-r a.txt\n")
    requirements = _write(code / "requirements.txt", "-r a.txt\n")

    with pytest.raises(EnvironmentBuildError, match=r"include each other: .*a\.txt -> b\.txt"):
        parse_requirements_file(requirements)


def test_missing_requirements_file(code: Path) -> None:
    with pytest.raises(EnvironmentBuildError, match="does not exist"):
        parse_requirements_file(code / "requirements.txt")


@pytest.mark.parametrize(
    ("requirements", "satisfied"),
    [
        ((), True),
        (("numpy",), True),
        (("NumPy", "scikit_learn>=1.0", "packaging"), True),
        (("numpy>=999",), False),
        (("roman-numerals-not-a-real-package",), False),
        (('roman; python_version < "3"',), True),
        (('numpy<1; sys_platform == "nonexistent"',), True),
        (("uvicorn[standard]",), True),
        (("packaging[no-such-extra]",), True),
        (("numpy @ https://example.org/numpy-2.0-py3-none-any.whl",), False),
        (("/opt/wheels/demo-1.0-py3-none-any.whl",), False),
    ],
)
def test_satisfied_by_server(requirements: tuple[str, ...], satisfied: bool) -> None:
    assert satisfied_by_server(EnvironmentSpec(requirements=requirements)) is satisfied


def test_combined_specs_keep_index_lines() -> None:
    image = EnvironmentSpec(requirements=("numpy",), find_links=("/srv/wheels",))
    model = EnvironmentSpec(requirements=("roman",), index_url="https://mirror.example/simple")

    combined = image.combined_with(model)

    assert combined.requirements == ("numpy", "roman")
    assert combined.index_url == "https://mirror.example/simple"
    assert combined.find_links == ("/srv/wheels",)
    assert EnvironmentSpec.from_json(combined.to_json()) == combined
