"""The synthetic Hub's cast: lab namespaces and their model families, intermediaries, vocabularies."""

from __future__ import annotations

from dataclasses import dataclass

REGIONS = ("China", "United States", "Europe", "Rest of world")
# Region codes used inside the generator; 0 = no known region (individuals, intermediaries, unknown labs).
REGION_CODE = {name: code for code, name in enumerate(REGIONS, start=1)}
CHINA, US = REGION_CODE["China"], REGION_CODE["United States"]

# What counts as a language model when the population is "LLMs" (finding.md §6).
LLM_PIPELINES = ("text-generation", "image-text-to-text")
RELATIONS = ("finetune", "adapter", "quantized", "merge")

# (label used in the repo name, parameter count)
LADDERS: dict[str, tuple[tuple[str, float], ...]] = {
    "llm": (
        ("0.5B", 494e6),
        ("1.5B", 1.54e9),
        ("3B", 3.09e9),
        ("7B", 7.62e9),
        ("8B", 8.03e9),
        ("14B", 14.8e9),
        ("32B", 32.8e9),
        ("70B", 70.6e9),
    ),
    "small-llm": (("135M", 135e6), ("360M", 362e6), ("1B", 1.24e9), ("2B", 2.61e9), ("4B", 4.02e9)),
    "moe": (("30B-A3B", 30.5e9), ("106B-A12B", 110e9), ("235B-A22B", 235e9), ("671B", 671e9), ("1T", 1.03e12)),
    "vlm": (("2B", 2.21e9), ("3B", 3.75e9), ("7B", 8.29e9), ("32B", 33.5e9), ("72B", 73.4e9)),
    "encoder": (("small", 33.4e6), ("base", 109e6), ("large", 335e6)),
    "minilm": (("L6-v2", 22.7e6), ("L12-v2", 33.4e6), ("base-v2", 109e6)),
    "asr": (("tiny", 39e6), ("base", 74e6), ("small", 244e6), ("medium", 769e6), ("large-v3", 1.55e9)),
    "vision": (("base-patch16-224", 86.6e6), ("large-patch14", 428e6), ("so400m-patch14-384", 878e6)),
    "diffusion": (("dev", 11.9e9), ("schnell", 11.9e9), ("base-1.0", 3.47e9), ("2-1", 865e6)),
    "gpt2": (("", 124e6), ("medium", 355e6), ("large", 774e6), ("xl", 1.56e9)),
}
# Name suffixes per ladder; "" keeps the bare family-size name.
VARIANTS: dict[str, tuple[str, ...]] = {
    "llm": ("-Instruct", "", "-Instruct", "-Base", "-Chat", "-Coder-Instruct"),
    "small-llm": ("-Instruct", "", "-it"),
    "moe": ("-Instruct", "", "-Thinking", "-Base"),
    "vlm": ("-Instruct", "", "-Thinking"),
    "encoder": ("", "-uncased", "-cased", "-multilingual", "-v1.5", "-en"),
    "minilm": ("", "-multilingual"),
    "asr": ("", ".en", "-turbo"),
    "vision": ("", "-in22k"),
    "diffusion": ("", "-refiner"),
    "gpt2": ("",),
}


@dataclass(frozen=True)
class Family:
    """A line of models a lab publishes: name stem, size ladder, task, library, licence."""

    stem: str
    ladder: str
    pipeline: str
    library: str
    license: str
    appeal: float = 1.0  # relative downloads per repo within the lab


@dataclass(frozen=True)
class Lab:
    """A registered lab namespace: region, how many repos, how popular and how often derived from."""

    namespace: str
    region: str
    repos: float  # relative number of repos
    downloads: float  # relative downloads per repo
    derived: float  # relative pull as a base model for others' finetunes and quantizations
    gated: str | None  # gate applied to its LLM repos, if any
    families: tuple[Family, ...]


def _llm(stem: str, lic: str, ladder: str = "llm", appeal: float = 1.0) -> Family:
    return Family(stem, ladder, "text-generation", "transformers", lic, appeal)


def _vlm(stem: str, lic: str, appeal: float = 1.0) -> Family:
    return Family(stem, "vlm", "image-text-to-text", "transformers", lic, appeal)


def _emb(stem: str, lic: str, pipeline: str = "sentence-similarity", appeal: float = 1.0) -> Family:
    library = "sentence-transformers" if pipeline == "sentence-similarity" else "transformers"
    return Family(stem, "encoder", pipeline, library, lic, appeal)


LABS: tuple[Lab, ...] = (
    # China
    Lab(
        "Qwen",
        "China",
        3.0,
        6.0,
        12.0,
        None,
        (
            _llm("Qwen2.5", "apache-2.0", appeal=2.0),
            _llm("Qwen3", "apache-2.0", appeal=2.0),
            _llm("Qwen3-MoE", "apache-2.0", "moe"),
            _vlm("Qwen2.5-VL", "apache-2.0"),
            _emb("Qwen3-Embedding", "apache-2.0", "feature-extraction"),
        ),
    ),
    Lab(
        "deepseek-ai",
        "China",
        0.8,
        4.0,
        3.0,
        None,
        (
            _llm("DeepSeek-R1-Distill", "mit", appeal=2.0),
            _llm("DeepSeek-V3", "mit", "moe"),
            _vlm("deepseek-vl2", "other"),
        ),
    ),
    Lab("THUDM", "China", 0.5, 1.0, 0.6, None, (_llm("glm-4", "other"), _vlm("cogvlm2", "other"))),
    Lab("zai-org", "China", 0.5, 1.5, 0.8, None, (_llm("GLM-4.5", "mit", "moe"), _vlm("GLM-4.1V", "mit"))),
    Lab("baidu", "China", 0.6, 0.8, 0.3, None, (_llm("ERNIE-4.5", "apache-2.0", "moe"),)),
    Lab(
        "tencent",
        "China",
        0.8,
        0.8,
        0.3,
        None,
        (
            _llm("Hunyuan", "other"),
            Family("HunyuanImage", "diffusion", "text-to-image", "diffusers", "other"),
        ),
    ),
    Lab(
        "BAAI",
        "China",
        1.0,
        5.0,
        1.0,
        None,
        (
            _emb("bge", "mit", appeal=3.0),
            _emb("bge-reranker", "apache-2.0", "text-classification"),
            _emb("bge-m3", "mit", "feature-extraction"),
        ),
    ),
    Lab("internlm", "China", 0.6, 0.6, 0.3, None, (_llm("internlm2_5", "other"), _vlm("InternVL3", "mit"))),
    Lab("moonshotai", "China", 0.3, 1.0, 0.5, None, (_llm("Kimi-K2", "other", "moe"), _vlm("Kimi-VL", "mit"))),
    Lab("MiniMaxAI", "China", 0.2, 0.6, 0.2, None, (_llm("MiniMax-M1", "apache-2.0", "moe"),)),
    # United States
    Lab(
        "meta-llama",
        "United States",
        0.8,
        6.0,
        8.0,
        "manual",
        (
            _llm("Llama-3.1", "llama3.1", appeal=2.0),
            _llm("Llama-3.2", "llama3.2", "small-llm", 2.0),
            _llm("Llama-4-Scout", "llama4", "moe"),
            _vlm("Llama-3.2-Vision", "llama3.2"),
        ),
    ),
    Lab(
        "google",
        "United States",
        3.0,
        3.0,
        5.0,
        None,
        (
            _llm("gemma-2", "gemma"),
            _llm("gemma-3", "gemma", "small-llm", 1.5),
            Family("vit", "vision", "image-classification", "transformers", "apache-2.0"),
            Family("siglip", "vision", "zero-shot-image-classification", "transformers", "apache-2.0"),
            Family("flan-t5", "encoder", "text2text-generation", "transformers", "apache-2.0"),
        ),
    ),
    Lab(
        "microsoft",
        "United States",
        3.0,
        2.0,
        1.5,
        None,
        (
            _llm("Phi-4", "mit", "small-llm"),
            _emb("deberta-v3", "mit", "fill-mask"),
            Family("resnet", "vision", "image-classification", "transformers", "apache-2.0"),
            _vlm("Florence-2", "mit"),
        ),
    ),
    Lab(
        "openai",
        "United States",
        0.6,
        6.0,
        1.5,
        None,
        (
            Family("whisper", "asr", "automatic-speech-recognition", "transformers", "apache-2.0", 2.0),
            Family("clip-vit", "vision", "zero-shot-image-classification", "transformers", "mit", 2.0),
            _llm("gpt-oss", "apache-2.0", "moe"),
        ),
    ),
    Lab(
        "nvidia",
        "United States",
        3.0,
        1.0,
        0.6,
        None,
        (
            _llm("Nemotron", "other"),
            Family("parakeet", "asr", "automatic-speech-recognition", "nemo", "cc-by-4.0"),
            _emb("NV-Embed", "cc-by-nc-4.0", "feature-extraction"),
        ),
    ),
    Lab(
        "ibm-granite",
        "United States",
        0.8,
        0.6,
        0.3,
        None,
        (
            _llm("granite-3.3", "apache-2.0", "small-llm"),
            _emb("granite-embedding", "apache-2.0"),
        ),
    ),
    Lab("allenai", "United States", 1.0, 0.5, 0.3, None, (_llm("OLMo-2", "apache-2.0"), _vlm("Molmo", "apache-2.0"))),
    Lab(
        "sentence-transformers",
        "United States",
        0.8,
        12.0,
        2.0,
        None,
        (
            Family("all-MiniLM", "minilm", "sentence-similarity", "sentence-transformers", "apache-2.0", 3.0),
            Family(
                "paraphrase-multilingual-MiniLM", "minilm", "sentence-similarity", "sentence-transformers", "apache-2.0"
            ),
            _emb("all-mpnet", "apache-2.0"),
        ),
    ),
    Lab("google-bert", "United States", 0.3, 12.0, 6.0, None, (_emb("bert", "apache-2.0", "fill-mask", 2.0),)),
    Lab(
        "FacebookAI",
        "United States",
        0.3,
        8.0,
        3.0,
        None,
        (
            _emb("roberta", "mit", "fill-mask"),
            _emb("xlm-roberta", "mit", "fill-mask"),
        ),
    ),
    Lab("openai-community", "United States", 0.2, 5.0, 1.5, None, (_llm("gpt2", "mit", "gpt2"),)),
    # Europe
    Lab(
        "mistralai",
        "Europe",
        0.8,
        2.0,
        3.0,
        "auto",
        (
            _llm("Mistral", "apache-2.0"),
            _llm("Mixtral-8x7B", "apache-2.0", "moe"),
            _vlm("Pixtral", "apache-2.0"),
        ),
    ),
    Lab(
        "stabilityai",
        "Europe",
        1.0,
        2.0,
        2.0,
        None,
        (Family("stable-diffusion", "diffusion", "text-to-image", "diffusers", "openrail++", 2.0),),
    ),
    Lab(
        "black-forest-labs",
        "Europe",
        0.3,
        3.0,
        4.0,
        None,
        (Family("FLUX.1", "diffusion", "text-to-image", "diffusers", "other", 2.0),),
    ),
    Lab("jinaai", "Europe", 0.5, 2.0, 0.3, None, (_emb("jina-embeddings-v3", "cc-by-nc-4.0", "feature-extraction"),)),
    # Rest of world
    Lab("CohereLabs", "Rest of world", 0.4, 0.5, 0.3, "manual", (_llm("aya-expanse", "cc-by-nc-4.0"),)),
    Lab("LGAI-EXAONE", "Rest of world", 0.3, 0.5, 0.2, None, (_llm("EXAONE-3.5", "other"),)),
    Lab("tiiuae", "Rest of world", 0.5, 0.8, 0.3, None, (_llm("Falcon3", "other"),)),
    Lab("sarvamai", "Rest of world", 0.2, 0.3, 0.1, None, (_llm("sarvam-m", "apache-2.0"),)),
)

# Namespace → region of every lab namespace the generator uses (for tests and calibration only;
# the project's reviewed registry lives in analytics/).
SYNTHETIC_LAB_REGIONS: dict[str, str] = {lab.namespace: lab.region for lab in LABS}

# Bases that `base_model:` tags name but the listing does not return (deleted, private or renamed repos).
# (id, pipeline, parameters, licence); EleutherAI is deliberately outside SYNTHETIC_LAB_REGIONS.
OUT_OF_WORLD_BASES: tuple[tuple[str, str, float, str], ...] = (
    ("meta-llama/Llama-2-7b-chat-hf", "text-generation", 6.74e9, "llama2"),
    ("Qwen/Qwen-7B-Chat", "text-generation", 7.72e9, "other"),
    ("deepseek-ai/deepseek-llm-7b-base", "text-generation", 6.91e9, "other"),
    ("EleutherAI/gpt-j-6b", "text-generation", 6.05e9, "apache-2.0"),
)
OUT_OF_WORLD_REGIONS = {"EleutherAI": None}

# Re-uploaders and quantizers: (namespace, share of intermediary quantizations, name suffixes, library)
INTERMEDIARIES: tuple[tuple[str, float, tuple[str, ...], str | None], ...] = (
    ("bartowski", 0.22, ("-GGUF",), None),
    ("mradermacher", 0.28, ("-GGUF", "-i1-GGUF"), None),
    ("unsloth", 0.12, ("-bnb-4bit", "-GGUF", "-unsloth-bnb-4bit"), "transformers"),
    ("mlx-community", 0.14, ("-4bit", "-8bit", "-6bit"), "mlx"),
    ("lmstudio-community", 0.06, ("-GGUF", "-MLX-4bit"), None),
    ("QuantFactory", 0.08, ("-GGUF",), None),
    ("TheBloke", 0.10, ("-GPTQ", "-AWQ", "-GGUF"), "transformers"),
)

FINETUNE_WORDS = (
    "sft",
    "dpo",
    "orpo",
    "grpo",
    "chat",
    "math",
    "code",
    "rp",
    "medical",
    "legal",
    "ko",
    "ja",
    "de",
    "reasoning",
    "uncensored",
    "abliterated",
    "distill",
    "v2",
    "lora-merged",
    "tool-use",
    "agent",
)
TASK_WORDS = ("imdb", "sst2", "emotion", "squad", "ner", "mrpc", "tweet-sentiment", "news", "spam", "nli")
USER_QUANT_SUFFIXES = ("-GGUF", "-Q4_K_M-GGUF", "-AWQ", "-GPTQ-Int4", "-4bit", "-Q8_0-GGUF")
LAB_QUANT_SUFFIXES = ("-AWQ", "-FP8", "-GPTQ-Int4", "-GGUF")
MERGE_WORDS = ("slerp", "ties", "dare-ties", "merge", "model-stock")

# Individuals' own models (no base): (pipeline, library, share, size ladder)
ORIGINAL_TASKS: tuple[tuple[str | None, str | None, float, str], ...] = (
    ("text-classification", "transformers", 0.16, "encoder"),
    ("text-generation", "transformers", 0.14, "small-llm"),
    ("reinforcement-learning", "stable-baselines3", 0.10, "none"),
    (None, None, 0.12, "none"),
    ("image-classification", "transformers", 0.08, "vision"),
    ("automatic-speech-recognition", "transformers", 0.07, "asr"),
    ("text-to-image", "diffusers", 0.07, "none"),
    ("token-classification", "transformers", 0.05, "encoder"),
    ("sentence-similarity", "sentence-transformers", 0.05, "encoder"),
    ("feature-extraction", "transformers", 0.04, "encoder"),
    ("translation", "transformers", 0.04, "encoder"),
    ("image-text-to-text", "transformers", 0.03, "vlm"),
    ("text-to-speech", "transformers", 0.03, "none"),
    ("object-detection", "transformers", 0.02, "vision"),
)
ORIGINAL_LICENSES = ("apache-2.0", "mit", "cc-by-4.0", "openrail", "other", None, None)
ORIGINAL_WORDS = ("tiny", "my", "test", "demo", "custom", "awesome", "new", "exp", "baseline", "final")
# A finetune of an encoder usually changes its task.
FINETUNE_TASK_OF = {
    "fill-mask": (
        "text-classification",
        "text-classification",
        "token-classification",
        "question-answering",
        "fill-mask",
    ),
    "feature-extraction": ("sentence-similarity", "feature-extraction"),
    "text2text-generation": ("text2text-generation", "summarization", "translation"),
}
