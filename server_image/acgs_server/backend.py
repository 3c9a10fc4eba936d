"""The model behind the server: verify the artifact, load it, generate in batches.

`ModelBackend` is the small seam between HTTP and ML. `ArtifactBackend` is the real one: it uses
the trainer's own `verify_artifact` and `load_for_inference`, so the server can never disagree
with the trainer about what a valid artifact is. Heavy imports (torch, transformers) happen inside
`load()`, after verification, so a server told to serve a bad artifact reports why within a second.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

# The verification reasons are the contract's artifact error codes (one definition for all images).
from acgs_contract.manifest import VERIFICATION_CODES
from acgs_trainer.artifact import ArtifactError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelCard:
    """What /models reports about the loaded model."""

    name: str
    version: str
    digest: str
    constitutional_hash: str
    base_model: str
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


class LoadFailure(Exception):
    """The artifact cannot be served. `reason` is a CamelCase constant; `details` names the
    file / expected / actual values where known, so the operator can put them in status."""

    def __init__(self, reason: str, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.details = dict(details or {})

    def to_json(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, **self.details}


# Reasons a server never becomes ready (also in README), besides the verification reasons above.
ARTIFACT_NOT_FOUND = "ArtifactNotFound"
ARTIFACT_INVALID = "ArtifactVerificationFailed"
MODEL_LOAD_FAILED = "ModelLoadFailed"
WARMUP_FAILED = "WarmupFailed"


class ModelBackend(Protocol):
    def load(self) -> ModelCard:
        """Verify and load the model; raise LoadFailure when it must not be served."""

    def generate(self, prompts: Sequence[str]) -> list[str]:
        """Generated text (continuation only) for each prompt, in order. Runs in a worker thread."""

    def format_prompt(self, record: Mapping[str, Any]) -> str: ...

    def parse_decision(self, text: str) -> str | None: ...


def default_torch_threads() -> int:
    """CPUs this process may really use: affinity, capped by the cgroup quota a pod limit sets."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def classify_artifact_error(error: ArtifactError) -> LoadFailure:
    """The trainer's ArtifactError as a reason + details (file, expected, actual where known)."""
    fields = error.fields()
    code = fields.pop("code")
    # Any code outside the verification ones (none today) becomes ARTIFACT_INVALID.
    return LoadFailure(code if code in VERIFICATION_CODES else ARTIFACT_INVALID, str(error), fields)


class ArtifactBackend:
    """Trainer artifact (base model + LoRA adapter) served with transformers `generate`."""

    def __init__(
        self,
        artifact_dir: Path,
        expected_digest: str | None,
        constitutional_hash: str,
        max_new_tokens: int,
        device: str = "cpu",
        min_new_tokens: int = 0,
        torch_threads: int | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
        warmup_batch_size: int = 8,
        constitution_digest: str | None = None,
        constitution_path: Path | None = None,
    ) -> None:
        self.artifact_dir = artifact_dir
        self.expected_digest = expected_digest
        self.constitutional_hash = constitutional_hash
        self.max_new_tokens = max_new_tokens
        self.min_new_tokens = min(min_new_tokens, max_new_tokens)
        self.device = device
        self.torch_threads = torch_threads or default_torch_threads()
        self.model_name = model_name
        self.model_version = model_version
        self.warmup_batch_size = warmup_batch_size
        self.constitution_digest = constitution_digest
        self.constitution_path = constitution_path
        self._model: Any = None
        self._tokenizer: Any = None
        self._prompting: Any = None

    # --- load ----------------------------------------------------------------------------------

    def load(self) -> ModelCard:
        from acgs_trainer import artifact as trainer_artifact  # light: hashing and JSON only

        if not self.artifact_dir.is_dir():
            raise LoadFailure(ARTIFACT_NOT_FOUND, f"artifact directory {self.artifact_dir} does not exist",
                              {"path": str(self.artifact_dir)})
        started = time.perf_counter()
        try:
            manifest = trainer_artifact.verify_artifact(
                self.artifact_dir, self.expected_digest, self.constitutional_hash, self.constitution_digest
            )
            self._check_constitution_file()
            # A base model outside the artifact: its own digest, before anything loads it.
            trainer_artifact.base_model_dir(self.artifact_dir, manifest)
        except trainer_artifact.ArtifactError as error:
            raise classify_artifact_error(error) from error
        logger.info("artifact %s verified in %.2fs", self.artifact_dir, time.perf_counter() - started)
        card = self._card(manifest)
        try:
            self._load_model()
        except Exception as error:  # noqa: BLE001 - any load error means "not servable"
            logger.exception("loading the model failed")
            raise LoadFailure(MODEL_LOAD_FAILED, f"loading the model failed: {error}") from error
        try:
            self._warm_up()
        except Exception as error:  # noqa: BLE001
            logger.exception("warm-up generate failed")
            raise LoadFailure(WARMUP_FAILED, f"warm-up generate failed: {error}") from error
        return card

    def _check_constitution_file(self) -> None:
        """A constitution handed to the server must be the content pinned to its hash too."""
        if self.constitution_path is None:
            return
        from acgs_contract import constitution as contract_constitution
        from acgs_contract.manifest import CONSTITUTION_MISMATCH
        from acgs_trainer.artifact import ArtifactError

        path = self.constitution_path
        try:
            actual = contract_constitution.content_digest_of_text(path.read_text(encoding="utf-8"))
            contract_constitution.check_content(self.constitutional_hash, actual, self.constitution_digest,
                                                origin=f"constitution {path}")
        except contract_constitution.ConstitutionDigestMismatch as error:
            raise ArtifactError(str(error), code=CONSTITUTION_MISMATCH, file=path, expected=error.expected,
                                actual=error.actual) from error
        except (OSError, ValueError) as error:
            raise ArtifactError(f"constitution {path}: cannot read: {error}", code=CONSTITUTION_MISMATCH,
                                file=path) from error

    def _card(self, manifest: Any) -> ModelCard:
        data: dict[str, Any] = manifest.model_dump(mode="json")
        base = data.get("base_model") or {}
        base_name = (str(base.get("name") or base.get("id") or base.get("path") or "") if isinstance(base, dict)
                     else str(base))
        return ModelCard(
            # The ModelVersion (via --model-name/--model-version) is the authority; the manifest
            # may carry its own for hand-run servers.
            name=self.model_name or str(data.get("model_name") or self.artifact_dir.name),
            version=self.model_version or str(data.get("model_version") or data.get("version") or "unversioned"),
            digest=str(data["digest"]),
            constitutional_hash=str(data["constitutional_hash"]),
            base_model=base_name,
            metrics=dict(data.get("metrics") or {}),
            extra={k: data[k] for k in ("privacy", "data", "training", "constitution", "adapter",
                                        "parent_version", "trainer_version", "created_at") if data.get(k)},
        )

    def _load_model(self) -> None:
        import torch

        from acgs_trainer import modeling, prompting

        # Inter-op parallelism buys nothing for one generate at a time and costs a thread pool.
        torch.set_num_threads(self.torch_threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass  # already set (tests that load twice in one process)
        started = time.perf_counter()
        # merge=True folds the LoRA deltas into the base weights: no extra adapter matmuls per step.
        model, tokenizer = modeling.load_for_inference(self.artifact_dir, device=self.device, merge=True)
        model.eval()
        self._model, self._tokenizer, self._prompting = model, tokenizer, prompting
        logger.info("model loaded in %.2fs (torch threads=%d, device=%s)",
                    time.perf_counter() - started, self.torch_threads, self.device)

    def _warm_up(self) -> None:
        from acgs_server.schemas import warmup_records

        prompts = [self.format_prompt(record) for record in warmup_records()]
        started = time.perf_counter()
        self.generate(prompts[:1])
        batch = (prompts * self.warmup_batch_size)[: self.warmup_batch_size]
        self.generate(batch)
        logger.info("warm-up done in %.2fs", time.perf_counter() - started)

    # --- serve ---------------------------------------------------------------------------------

    def format_prompt(self, record: Mapping[str, Any]) -> str:
        return str(self._prompting.format_prompt(record))

    def parse_decision(self, text: str) -> str | None:
        decision = self._prompting.parse_decision(text)
        return None if decision is None else str(decision)

    def generate(self, prompts: Sequence[str]) -> list[str]:
        return self.generate_ids(self.encode(prompts))

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """Token ids of each prompt, unpadded: the trainer's tokenization (add_special_tokens=False)."""
        from acgs_trainer.generation import encode_prompts

        return encode_prompts(self._tokenizer, prompts)

    def generate_ids(self, token_ids: Sequence[Sequence[int]]) -> list[str]:
        """Generated text for prompts given as token ids (the model process gets these from the
        HTTP process, which tokenizes while the model generates): the trainer's own generation
        (acgs_trainer.generation), so the served model answers exactly what it was scored on."""
        from acgs_trainer.generation import generate_from_ids

        return generate_from_ids(self._model, self._tokenizer, token_ids, self.max_new_tokens,
                                 self.min_new_tokens, inference_only=True)

    def tokenizer_file(self) -> str | None:
        """The tokenizer's `tokenizer.json`, for a process that wants to tokenize without
        transformers (the HTTP process); None when the tokenizer has none."""
        path = Path(getattr(self._tokenizer, "name_or_path", "") or "") / "tokenizer.json"
        return str(path) if path.is_file() else None
