"""EnvironmentBuilder against real uv and the real package index: no fakes, since what matters is
that uv's venvs, the layering `.pth` and the cache behave together."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import threading
import time
from pathlib import Path

import pytest

from sabio.environments import (
    Environment,
    EnvironmentBuilder,
    EnvironmentBuildError,
    EnvironmentSpec,
)
from sabio.environments.layout import METADATA_FILE

ROMAN = EnvironmentSpec(requirements=("roman==4.2",))


@pytest.fixture(scope="session")
def uv_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One uv cache for the session, so each package is downloaded once."""
    return tmp_path_factory.mktemp("uv-cache")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "environments"


@pytest.fixture
def builder(root: Path, uv_cache: Path) -> EnvironmentBuilder:
    return EnvironmentBuilder(root, uv_cache_dir=uv_cache)


@pytest.fixture
def needs_roman() -> None:
    if importlib.util.find_spec("roman") is not None:
        pytest.skip("roman is installed in the test environment, so it cannot prove layering")


def _directories(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def _run(environment: Environment, code: str) -> str:
    result = subprocess.run(
        [str(environment.python), "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_server_environment_when_it_satisfies_the_spec(
    builder: EnvironmentBuilder, root: Path
) -> None:
    spec = EnvironmentSpec(
        requirements=("numpy", "scikit-learn>=1.0", 'roman==4.2; python_version < "3"')
    )

    environment = builder.ensure(spec)

    assert environment == builder.server_environment()
    assert environment.key == "server"
    assert environment.path is None
    assert not root.exists()


def test_empty_spec_uses_the_server(builder: EnvironmentBuilder) -> None:
    assert builder.ensure(EnvironmentSpec()).is_server


@pytest.mark.slow
@pytest.mark.usefixtures("needs_roman")
def test_builds_layered_environment_then_reuses_it(
    builder: EnvironmentBuilder, root: Path, uv_cache: Path
) -> None:
    assert not builder.satisfied_by_server(ROMAN)

    started = time.perf_counter()
    environment = builder.ensure(ROMAN)
    cold = time.perf_counter() - started

    assert environment.path == root / environment.key
    assert environment.python == environment.path / "bin" / "python"
    code = "import roman, numpy, sabio; print(roman.toRoman(4))"
    assert _run(environment, code) == "IV"
    # The venv's own packages come first, the server's after them.
    paths = _run(environment, "import roman, numpy; print(roman.__file__); print(numpy.__file__)")
    roman_file, numpy_file = paths.splitlines()
    assert Path(roman_file).is_relative_to(environment.path)
    assert not Path(numpy_file).is_relative_to(environment.path)

    metadata = environment.path / METADATA_FILE
    built_at = metadata.stat().st_mtime_ns
    started = time.perf_counter()
    again = builder.ensure(ROMAN)
    warm = time.perf_counter() - started
    assert again == environment
    assert warm < 0.2, f"warm ensure took {warm:.3f} s (cold {cold:.1f} s)"
    assert metadata.stat().st_mtime_ns == built_at

    # A new builder (a restarted server) finds the same environment without building.
    restarted = EnvironmentBuilder(root, uv_cache_dir=uv_cache)
    assert restarted.cached(ROMAN) == environment
    assert restarted.ensure(ROMAN) == environment
    assert metadata.stat().st_mtime_ns == built_at
    assert [p.name for p in _directories(root)] == [environment.key]

    [described] = builder.describe_cache()
    assert described["key"] == environment.key
    assert described["requirements"] == ["roman==4.2"]
    assert described["size_bytes"] > 0


@pytest.mark.slow
def test_unsatisfiable_requirement_fails_with_uv_explanation(
    builder: EnvironmentBuilder, root: Path
) -> None:
    spec = EnvironmentSpec(requirements=("roman==999.0.0",))

    with pytest.raises(EnvironmentBuildError) as caught:
        builder.ensure(spec)

    error = caught.value
    assert error.code == "EnvironmentBuildFailed"
    assert error.status == 400
    assert "No solution found" in error.message
    assert "roman==999.0.0" in error.message.split("uv exited", 1)[1]
    assert _directories(root) == []
    assert builder.describe_cache() == []


@pytest.mark.slow
def test_build_timeout_leaves_nothing_behind(root: Path, uv_cache: Path) -> None:
    builder = EnvironmentBuilder(root, uv_cache_dir=uv_cache, timeout_seconds=0.001)

    with pytest.raises(EnvironmentBuildError, match="did not finish"):
        builder.ensure(EnvironmentSpec(requirements=("roman==4.1",)))

    assert _directories(root) == []


@pytest.mark.slow
@pytest.mark.usefixtures("needs_roman")
def test_concurrent_ensure_builds_once(
    root: Path, uv_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sabio.environments.builder")
    builders = [EnvironmentBuilder(root, uv_cache_dir=uv_cache) for _ in range(2)]
    barrier = threading.Barrier(len(builders))
    results: list[Environment] = []
    errors: list[BaseException] = []

    def ensure(builder: EnvironmentBuilder) -> None:
        barrier.wait()
        try:
            results.append(builder.ensure(ROMAN))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ensure, args=(b,)) for b in builders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert errors == []
    assert len(results) == 2
    assert results[0] == results[1]
    builds = [r for r in caplog.records if r.getMessage().startswith("Building Python")]
    assert len(builds) == 1
    assert _directories(root) == [results[0].path]
    assert _run(results[0], "import roman; print(roman.toRoman(9))") == "IX"


@pytest.mark.slow
@pytest.mark.usefixtures("needs_roman")
def test_requirements_file_end_to_end(builder: EnvironmentBuilder, tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "requirements.txt").write_text("# the model's extras\nroman==4.2  # roman numerals\n")

    spec = builder.spec_from_requirements_file(code / "requirements.txt")
    environment = builder.ensure(spec)

    assert spec == ROMAN
    assert not environment.is_server
    assert _run(environment, "import roman; print(roman.toRoman(1999))") == "MCMXCIX"


def test_key_depends_on_spec_and_local_file_content(
    builder: EnvironmentBuilder, tmp_path: Path
) -> None:
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"first")
    spec = EnvironmentSpec(requirements=(str(wheel),))

    first = builder.key_for(spec)
    assert builder.key_for(spec) == first
    assert builder.key_for(ROMAN) != first
    wheel.write_bytes(b"second")
    assert builder.key_for(spec) != first
    assert not builder.satisfied_by_server(spec)


def test_relative_local_path_in_spec_is_rejected(builder: EnvironmentBuilder) -> None:
    with pytest.raises(EnvironmentBuildError, match="relative path"):
        builder.ensure(EnvironmentSpec(requirements=("./wheels/demo-1.0-py3-none-any.whl",)))


def test_from_pip_environment_filters_missing_local_locations(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    simple = tmp_path / "simple"
    simple.mkdir()
    environ = {
        "PIP_FIND_LINKS": f"{wheels} {tmp_path / 'missing'} file://{tmp_path / 'gone'}",
        "PIP_INDEX_URL": "https://mirror.example/simple",
        "PIP_EXTRA_INDEX_URL": f"{simple.as_uri()} file://{tmp_path / 'nope'} https://x.example/s",
        "PIP_DEFAULT_TIMEOUT": "180",
    }

    builder = EnvironmentBuilder.from_pip_environment(tmp_path / "envs", environ)

    indexes = builder.indexes
    assert indexes.find_links == (str(wheels),)
    assert indexes.index_url == "https://mirror.example/simple"
    assert indexes.extra_index_urls == (simple.as_uri(), "https://x.example/s")
    assert indexes.index_strategy == "unsafe-best-match"  # pip picks the best across indexes
    assert builder.uv_cache_dir == tmp_path / "cache" / "uv"

    spec = EnvironmentSpec(
        requirements=("roman",),
        index_url="https://model.example/simple",
        find_links=("https://model.example/wheels",),
    )
    arguments = indexes.uv_arguments(spec)
    assert arguments[:2] == ["--index-url", "https://model.example/simple"]
    assert arguments.count("--index-url") == 1
    assert arguments.count("--find-links") == 2
    assert arguments[-2:] == ["--index-strategy", "unsafe-best-match"]


def test_from_pip_environment_without_settings(tmp_path: Path) -> None:
    builder = EnvironmentBuilder.from_pip_environment(tmp_path / "envs", {})
    assert builder.indexes.uv_arguments(ROMAN) == []
