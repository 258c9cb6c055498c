"""Training job statuses and the controller-owned fields DescribeTrainingJob reports."""

from __future__ import annotations

IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPING = "Stopping"
STOPPED = "Stopped"

STARTING = "Starting"
DOWNLOADING = "Downloading"
TRAINING = "Training"
UPLOADING = "Uploading"
MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
RESTARTING = "Restarting"

DESCRIBED_STATE = (
    "SecondaryStatus",
    "SecondaryStatusTransitions",
    "FailureReason",
    "TrainingStartTime",
    "TrainingEndTime",
    "TrainingTimeInSeconds",
    "BillableTimeInSeconds",
    "FinalMetricDataList",
    "ModelArtifacts",
)
