"""Names of remote work: the same batch always gets the same name, and every name is one that
SageMaker (job names) and Kubernetes (pod names, label values) accept."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings as hypothesis_settings, strategies as st

from mlfleet.backends import naming

SAGEMAKER_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")  # botocore's TrainingJobName pattern
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

RUN = "20261123T000000-5a6e"
BATCH = "r0-abcdef0123"
LONGEST = "churn-" + "x" * 41 + "1"  # 48 characters, the spec's maximum

experiments = st.from_regex(r"[a-z0-9-]{1,48}", fullmatch=True)
run_ids = st.from_regex(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{4}", fullmatch=True)
batch_ids = st.from_regex(r"r[0-9]{1,2}-[0-9a-f]{10}", fullmatch=True)


def assert_remote_name(name: str) -> None:
    assert len(name) <= 63, name
    assert SAGEMAKER_JOB_NAME.match(name), name
    assert DNS_1123_LABEL.match(name), name
    assert naming.is_pod_name(name) and naming.is_dns_label(name), name


def test_job_name_snapshot() -> None:
    # A literal: a name that changed between releases would orphan every running job and pod.
    assert naming.job_name(experiment="churn-baseline", run_id=RUN, batch_id=BATCH) == "churn-baseline-94b73ddc6f"
    assert naming.job_name(experiment="churn-baseline", run_id=RUN, batch_id=BATCH, attempt=3) == "churn-baseline-94b73ddc6f-a3"


def test_job_name_is_deterministic_and_tells_batches_and_runs_apart() -> None:
    name = naming.job_name(experiment="churn-baseline", run_id=RUN, batch_id=BATCH)
    assert naming.job_name(experiment="churn-baseline", run_id=RUN, batch_id=BATCH) == name
    others = {
        naming.job_name(experiment="churn-baseline", run_id=RUN, batch_id="r0-abcdef0124"),
        naming.job_name(experiment="churn-baseline", run_id="20261123T000000-5a6f", batch_id=BATCH),
        naming.job_name(experiment="churn-baseline-2", run_id=RUN, batch_id=BATCH),
    }
    assert name not in others and len(others) == 3


def test_longest_experiment_name_with_the_last_attempt_fits() -> None:
    assert len(LONGEST) == 48
    for attempt in (1, 2, naming.MAX_ATTEMPTS):
        assert_remote_name(naming.job_name(experiment=LONGEST, run_id=RUN, batch_id=BATCH, attempt=attempt))


def test_long_experiments_differing_after_the_stem_still_get_different_names() -> None:
    a = naming.job_name(experiment="x" * 45 + "-aa", run_id=RUN, batch_id=BATCH)
    b = naming.job_name(experiment="x" * 45 + "-bb", run_id=RUN, batch_id=BATCH)
    assert a[:40] == b[:40] and a != b


@pytest.mark.parametrize("experiment, stem", [("-churn-", "churn"), ("a---b", "a-b"), ("---", "mlfleet"), ("Churn", "churn")])
def test_edge_experiment_names_make_valid_stems(experiment: str, stem: str) -> None:
    name = naming.job_name(experiment=experiment, run_id=RUN, batch_id=BATCH)
    assert name.rsplit("-", 1)[0] == stem
    assert_remote_name(name)


def test_attempt_suffixes() -> None:
    assert naming.attempt_name("job", 1) == "job"
    assert naming.attempt_name("job", 2) == "job-a2"
    assert naming.attempt_name("job", naming.MAX_ATTEMPTS) == f"job-a{naming.MAX_ATTEMPTS}"
    for attempt in (0, naming.MAX_ATTEMPTS + 1):
        with pytest.raises(ValueError, match=f"attempt {attempt} out of range 1..{naming.MAX_ATTEMPTS}"):
            naming.attempt_name("job", attempt)


@hypothesis_settings(max_examples=150, deadline=None)
@given(experiment=experiments, run_id=run_ids, batch_id=batch_ids, attempt=st.integers(1, naming.MAX_ATTEMPTS))
def test_every_spec_name_gives_valid_deterministic_names(experiment: str, run_id: str, batch_id: str, attempt: int) -> None:
    name = naming.job_name(experiment=experiment, run_id=run_id, batch_id=batch_id, attempt=attempt)
    assert_remote_name(name)
    assert name == naming.job_name(experiment=experiment, run_id=run_id, batch_id=batch_id, attempt=attempt)
    values = naming.labels(experiment=experiment, run_id=run_id, batch_id=batch_id)
    assert naming.label_problems(values) == []
    assert values == naming.labels(experiment=experiment, run_id=run_id, batch_id=batch_id)
    for value in values.values():
        assert LABEL_VALUE.match(value) and len(value) <= 63, value


def test_labels_snapshot() -> None:
    assert naming.labels(experiment="churn-baseline", run_id=RUN, batch_id=BATCH) == {
        "app.kubernetes.io/name": "mlfleet-trial",
        "app.kubernetes.io/part-of": "mlfleet",
        "mlfleet.io/experiment": "churn-baseline",
        "mlfleet.io/run": RUN,
        "mlfleet.io/batch": BATCH,
    }


@pytest.mark.parametrize("experiment", ["churn-", "-churn", "-"])
def test_label_values_of_names_with_edge_hyphens_are_valid(experiment: str) -> None:
    # `^[a-z0-9-]+$` allows a leading or trailing hyphen; a label value must not have one.
    values = naming.labels(experiment=experiment, run_id=RUN, batch_id=BATCH)
    assert naming.label_problems(values) == []
    assert values["mlfleet.io/experiment"] == experiment.strip("-")


@pytest.mark.parametrize("values, words", [
    ({"mlfleet.io/experiment": "-churn"}, "value must be"),
    ({"mlfleet.io/experiment": "x" * 64}, "value must be"),
    ({"mlfleet.io/experiment": "a b"}, "value must be"),
    ({"Bad_Prefix/x": "y"}, "prefix must be a DNS subdomain"),
    ({"mlfleet.io/": "y"}, "name must be"),
    ({"mlfleet.io/" + "n" * 64: "y"}, "name must be"),
])
def test_label_problems_name_the_label(values: dict[str, str], words: str) -> None:
    problems = naming.label_problems(values)
    assert len(problems) == 1 and words in problems[0] and next(iter(values)) in problems[0]


def test_label_problems_accept_valid_labels() -> None:
    assert naming.label_problems({"a": "", "example.com/x_y.z": "A-b_c.9", "k": "v" * 63}) == []


def test_pod_and_dns_names() -> None:
    assert naming.is_pod_name("churn-baseline-94b73ddc6f") and naming.is_pod_name("a.b-c")
    assert not naming.is_pod_name("Churn") and not naming.is_pod_name("churn_x") and not naming.is_pod_name("-a")
    assert not naming.is_pod_name("a" * 254) and naming.is_pod_name("a" * 63 + "." + "b" * 63)
    assert naming.is_dns_label("a" * 63) and not naming.is_dns_label("a" * 64) and not naming.is_dns_label("a.b")


def test_object_store_layout_snapshot() -> None:
    root = "s3://bucket/prefix"
    batch = f"{root}/experiments/churn-baseline/{RUN}/batches/{BATCH}"
    assert naming.dataset_uri(root, "ab12", "train.parquet") == f"{root}/datasets/ab12/train.parquet"
    assert naming.code_uri(root, "cd34", "mlfleet.whl") == f"{root}/code/cd34/mlfleet.whl"
    assert naming.run_uri(root, "churn-baseline", RUN) == f"{root}/experiments/churn-baseline/{RUN}"
    assert naming.batch_uri(root, "churn-baseline", RUN, BATCH) == batch
    assert naming.config_uri(root, "churn-baseline", RUN, BATCH) == f"{batch}/config/job.json"


@given(experiment=experiments, run_id=run_ids, batch_id=batch_ids)
def test_batch_locations_nest_and_do_not_collide(experiment: str, run_id: str, batch_id: str) -> None:
    root = "s3://bucket/prefix"
    batch = naming.batch_uri(root, experiment, run_id, batch_id)
    assert batch.startswith(naming.run_uri(root, experiment, run_id) + "/batches/")
    assert naming.config_uri(root, experiment, run_id, batch_id).startswith(batch + "/")
    assert "//" not in batch.removeprefix("s3://")
    assert batch != naming.batch_uri(root, experiment, run_id, batch_id + "0")
