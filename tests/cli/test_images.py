"""`sabio images` lists the images Sabio runs and the SageMaker repositories mapped to them."""

from __future__ import annotations

import subprocess
import sys


def test_images_lists_builtin_images_and_sagemaker_repositories():
    result = subprocess.run(
        [sys.executable, "-m", "sabio", "images"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["IMAGE", "BUILT-IN", "ALGORITHM"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"sabio/sklearn", "sabio/xgboost", "sabio/linear-learner", "sabio/pytorch"}
    assert "sagemaker-scikit-learn" in rows["sabio/sklearn"]
    assert "xgboost" in rows["sabio/xgboost"].split()[1]
    assert "pytorch-training" in rows["sabio/pytorch"]
