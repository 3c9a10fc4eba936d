"""The webhook's decisions, without a cluster: messages name the field and what was expected."""

from __future__ import annotations

import pytest

from acgs_operator.admission import Rejected, validate
from acgs_contract.constitution import CONSTITUTIONAL_HASH

HASH = CONSTITUTIONAL_HASH
MV = {"constitutionalHash": HASH, "modelName": "m", "version": "1.0.0", "baseModel": "builtin:tiny-llama",
      "artifact": {"uri": "pvc://a/m/1.0.0", "digest": "sha256:" + "a" * 64}, "stage": "candidate"}


def test_wrong_hash_names_both_values():
    with pytest.raises(Rejected) as err:
        validate("ModelVersion", {**MV, "constitutionalHash": "0123456789abcdef"}, None, HASH)
    assert "'0123456789abcdef'" in str(err.value) and f"'{HASH}'" in str(err.value)


def test_missing_hash_says_what_is_expected():
    spec = {k: v for k, v in MV.items() if k != "constitutionalHash"}
    with pytest.raises(Rejected, match=f"spec.constitutionalHash is required: expected '{HASH}'"):
        validate("ModelVersion", spec, None, HASH)


def test_expected_hash_comes_from_configuration():
    amended = "1111111111111111"
    validate("ModelVersion", {**MV, "constitutionalHash": amended}, None, amended)
    with pytest.raises(Rejected):
        validate("ModelVersion", MV, None, amended)


@pytest.mark.parametrize("change", [{"version": "1.0.1"},
                                    {"artifact": {"uri": "pvc://a/x", "digest": MV["artifact"]["digest"]}},
                                    {"metrics": {"accuracy": 0.99}}])
def test_model_version_is_immutable_except_stage(change):
    with pytest.raises(Rejected, match=r"immutable except spec.stage; changed: spec\."):
        validate("ModelVersion", {**MV, **change}, MV, HASH)


def test_stage_may_change():
    validate("ModelVersion", {**MV, "stage": "production"}, MV, HASH)


def test_field_errors_name_the_path_and_value():
    spec = {"constitutionalHash": HASH, "modelName": "m", "data": {"generate": {"type": "constitutional_ai"}},
            "privacy": {"targetEpsilon": 50, "targetDelta": 1e-5}}
    with pytest.raises(Rejected) as err:
        validate("TrainingJob", spec, None, HASH)
    assert "spec.privacy.targetEpsilon" in str(err.value) and "50" in str(err.value)


def test_unknown_kind():
    with pytest.raises(Rejected, match="unknown kind"):
        validate("Pod", {}, None, HASH)


# --- policy: image allowlist, allow-all client selectors, key-less tolerations ---------------------

from acgs_operator.config import Settings  # noqa: E402
from acgs_operator.policy import ImageAllowlist, repository  # noqa: E402

TJ = {"constitutionalHash": HASH, "modelName": "m", "data": {"generate": {"type": "constitutional_ai"}}}
DEPLOY = {"constitutionalHash": HASH, "model": {"versionRef": "m-1-0-0"}}
PINNED = "sha256:" + "b" * 64


@pytest.mark.parametrize("image, repo", [
    ("ghcr.io/acgs/trainer:0.1.0", "ghcr.io/acgs/trainer"),
    ("localhost:5000/acgs/trainer", "localhost:5000/acgs/trainer"),
    ("localhost:5000/acgs/trainer:1@" + PINNED, "localhost:5000/acgs/trainer"),
])
def test_repository_drops_tag_and_digest(image, repo):
    assert repository(image) == repo


def test_default_allowlist_is_the_configured_images_repositories():
    allow = Settings().image_allowlist
    assert allow.allows("ghcr.io/acgs/trainer:0.2.0") and allow.allows("ghcr.io/acgs/server@" + PINNED)
    assert not allow.allows("ghcr.io/acgs/trainer-evil:1")  # a repository, not a string prefix
    assert not allow.allows("ghcr.io/evil/trainer:0.1.0")


@pytest.mark.parametrize("kind, spec", [("TrainingJob", TJ), ("Deployment", DEPLOY)])
def test_image_outside_the_allowlist_is_refused_naming_field_value_and_allowlist(kind, spec):
    allow = ImageAllowlist(("ghcr.io/acgs/",))
    validate(kind, {**spec, "image": "ghcr.io/acgs/anything:1"}, None, HASH, allow)
    with pytest.raises(Rejected) as err:
        validate(kind, {**spec, "image": "docker.io/evil/miner:latest"}, None, HASH, allow)
    message = str(err.value)
    assert "spec.image" in message and "'docker.io/evil/miner:latest'" in message and "ghcr.io/acgs/" in message


def test_digest_entry_admits_only_that_digest():
    allow = ImageAllowlist((PINNED,))
    validate("TrainingJob", {**TJ, "image": "any.registry/x@" + PINNED}, None, HASH, allow)
    for image in ("any.registry/x:1", "any.registry/x@sha256:" + "c" * 64):
        with pytest.raises(Rejected, match="spec.image"):
            validate("TrainingJob", {**TJ, "image": image}, None, HASH, allow)


def test_settings_refuse_own_images_outside_their_allowlist():
    with pytest.raises(ValueError, match="ACGS_TRAINER_IMAGE"):
        Settings.from_env({"ACGS_ALLOWED_IMAGES": "ghcr.io/acgs/server"})
    ok = Settings.from_env({"ACGS_ALLOWED_IMAGES": "ghcr.io/acgs/, registry.example/ml/"})
    assert ok.image_allowlist.entries == ("ghcr.io/acgs/", "registry.example/ml/")


@pytest.mark.parametrize("kind, spec", [("TrainingJob", TJ), ("Deployment", DEPLOY)])
def test_toleration_without_key_is_refused(kind, spec):
    bad = {**spec, "resources": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"},
                                                 {"operator": "Exists"}]}}
    with pytest.raises(Rejected, match=r"spec.resources.tolerations\[1\].key: required"):
        validate(kind, bad, None, HASH)


@pytest.mark.parametrize("peer, field", [
    ({"podSelector": {}}, r"allowedClients\[0\].podSelector: empty selects every pod"),
    ({}, r"allowedClients\[0\].podSelector: empty selects every pod"),
    ({"podSelector": {"app": "gw"}, "namespaceSelector": {}}, r"allowedClients\[0\].namespaceSelector: empty"),
])
def test_allow_all_client_selectors_are_refused(peer, field):
    with pytest.raises(Rejected, match=field):
        validate("Deployment", {**DEPLOY, "network": {"allowedClients": [peer]}}, None, HASH)


def test_named_clients_are_admitted():
    validate("Deployment", {**DEPLOY, "network": {"allowedClients": [
        {"podSelector": {"app": "gw"}, "namespaceSelector": {"kubernetes.io/metadata.name": "apps"}}]}}, None, HASH)


def test_metadata_only_update_of_an_object_under_an_older_constitution_is_admitted():
    # kopf's annotations and people's labels on an object admitted under the previous hash still
    # go through; the reconcilers hold the object (ConstitutionMismatch) instead.
    amended = "1111111111111111"
    validate("ModelVersion", MV, MV, amended)
    with pytest.raises(Rejected, match="does not match the operator's constitution"):
        validate("ModelVersion", {**MV, "stage": "production"}, MV, amended)  # no promotion under it


def test_constitution_mismatch_message_names_both_hashes():
    from acgs_operator import constitution_check

    assert constitution_check.mismatch("Deployment", HASH, HASH) is None
    message = constitution_check.mismatch("Deployment", HASH, "1111111111111111")
    assert f"'{HASH}'" in message and "'1111111111111111'" in message
    marked = constitution_check.mark([], message, 3)
    assert constitution_check.is_marked({"conditions": marked}) and marked[0]["reason"] == "ConstitutionalHashMismatch"
    cleared = constitution_check.mark(marked, None, 4)
    assert not constitution_check.is_marked({"conditions": cleared}) and cleared[0]["reason"] == "ConstitutionMatches"
    assert constitution_check.mark([], None, 4) == []  # never marked: no condition appears
