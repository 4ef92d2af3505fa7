"""The embedded-model catalog: parts are concatenated, the result is verified against its pin before
anything loads it, and a tampered or truncated file is never handed out."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from shelfwise.errors import ConfigError, ModelIntegrityError, UnknownNameError
from shelfwise.llm import models
from shelfwise.llm.models import EMBEDDED_MODELS, EmbeddedModel, model_path

PARTS = [b"GGUF" + b"a" * 1000, b"b" * 777, b"c" * 5]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, EmbeddedModel], Path]:
    """A three-part 'model' shipped like the real ones: importable packages with get_part_path()."""
    pkgs = tmp_path / "site"
    names = []
    for i, data in enumerate(PARTS, 1):
        pkg = pkgs / f"swfake_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        (pkg / "__init__.py").write_text(
            "import os\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{i:02d}.bin')\n")
        names.append(pkg.name)
    monkeypatch.syspath_prepend(str(pkgs))
    for n in names:
        sys.modules.pop(n, None)
    whole = b"".join(PARTS)
    spec = EmbeddedModel(name="fake-model", upstream="test", packages=tuple(names),
                         pip_specs=tuple(f"{n.replace('_', '-')}==1.0" for n in names),
                         size=len(whole), sha256=hashlib.sha256(whole).hexdigest())
    return {"fake-model": spec}, tmp_path / "cache"


def test_parts_are_assembled_verified_and_reused(fake, monkeypatch):
    catalog, cache = fake
    path = model_path("fake-model", cache, catalog=catalog)
    assert path == cache / "fake-model.gguf" and path.read_bytes() == b"".join(PARTS)
    assert (cache / "fake-model.gguf.sha256").exists()
    hashed = []
    real = models._sha256_of
    monkeypatch.setattr(models, "_sha256_of", lambda *a, **k: hashed.append(a) or real(*a, **k))
    assert model_path("fake-model", cache, catalog=catalog) == path
    assert hashed == [], "an unchanged verified file must not be hashed again"


@pytest.mark.parametrize("damage", ["tamper", "truncate"])
def test_a_damaged_assembled_file_is_never_returned(fake, damage):
    catalog, cache = fake
    path = model_path("fake-model", cache, catalog=catalog)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + b"X" if damage == "tamper" else data[:100])
    # the sidecar still claims the old digest; the changed size/mtime must make it re-verify
    assert model_path("fake-model", cache, catalog=catalog).read_bytes() == b"".join(PARTS)


def test_parts_that_do_not_add_up_to_the_pin_are_refused(fake):
    catalog, cache = fake
    bad = catalog["fake-model"].__class__(**{**catalog["fake-model"].__dict__, "sha256": "0" * 64})
    with pytest.raises(ModelIntegrityError) as err:
        model_path("fake-model", cache, catalog={"fake-model": bad})
    assert "NOT loaded" in str(err.value) and "--force-reinstall" in str(err.value)
    assert not list(cache.iterdir()), "nothing unverified may be left in the cache"


def test_unknown_model_lists_the_valid_names(tmp_path):
    with pytest.raises(UnknownNameError) as err:
        model_path("qwen-9000", tmp_path)
    assert "qwen2.5-coder-0.5b" in str(err.value) and "qwen2.5-coder-1.5b" in str(err.value)


def test_missing_package_says_how_to_install(tmp_path):
    spec = EmbeddedModel(name="x", upstream="x", packages=("swfake_not_installed",), pip_specs=(), size=1,
                         sha256="0" * 64)
    with pytest.raises(ConfigError, match=r"pip install 'shelfwise\[local\]'"):
        model_path("x", tmp_path, catalog={"x": spec})


def test_catalog_pins_are_complete():
    for name, spec in EMBEDDED_MODELS.items():
        assert spec.name == name and len(spec.sha256) == 64 and spec.size > 100_000_000
        assert len(spec.packages) == len(spec.pip_specs) and all("==" in s for s in spec.pip_specs)


@pytest.mark.slow
def test_real_worker_model_matches_its_pin(model_cache):
    path = model_path("qwen2.5-coder-0.5b", model_cache)
    assert path.stat().st_size == 491_400_064
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"
