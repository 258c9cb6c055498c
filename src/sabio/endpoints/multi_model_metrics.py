"""SageMaker's model loading metrics of multi-model variants, kept in memory.

Per EndpointName and VariantName, as SageMaker publishes them for CPU multi-model endpoints:
- `ModelCacheHit`: one sample per invocation, 1 when its target model was already loaded and
  0 when it had to be loaded (so the Average is the hit rate);
- `ModelLoadingWaitTime`: how long an invocation waited for its model to be downloaded and
  loaded (only invocations that waited);
- `ModelDownloadingTime`, `ModelLoadingTime`, `ModelUnloadingTime`: one sample per model
  fetched from the artifact store, started, and stopped;
- `LoadedModelCount`: the number of models loaded, sampled at each load and unload.

Times are in microseconds and counts have unit None, as AWS documents them. Samples go into
one-minute buckets kept for three hours; nothing is persisted.
"""

from __future__ import annotations

from collections.abc import Mapping

from sabio.telemetry.sampled_series import SampledSeries

CACHE_HIT = "ModelCacheHit"
LOADING_WAIT_TIME = "ModelLoadingWaitTime"
DOWNLOADING_TIME = "ModelDownloadingTime"
LOADING_TIME = "ModelLoadingTime"
UNLOADING_TIME = "ModelUnloadingTime"
LOADED_MODEL_COUNT = "LoadedModelCount"

UNITS: Mapping[str, str] = {
    CACHE_HIT: "None",
    LOADING_WAIT_TIME: "Microseconds",
    DOWNLOADING_TIME: "Microseconds",
    LOADING_TIME: "Microseconds",
    UNLOADING_TIME: "Microseconds",
    LOADED_MODEL_COUNT: "None",
}


class MultiModelMetrics(SampledSeries):
    """Implements `VariantSeries`: the CloudWatch API reads its datapoints and `/metrics` its
    lifetime totals."""

    units: Mapping[str, str] = UNITS
    exposed: Mapping[str, tuple[str, str]] = {
        CACHE_HIT: (
            "sabio_model_cache_hits_total",
            "Invocations of a multi-model variant whose target model was already loaded.",
        ),
        LOADING_WAIT_TIME: (
            "sabio_model_loading_wait_seconds",
            "Time invocations of a multi-model variant waited for their model to load.",
        ),
        LOADING_TIME: (
            "sabio_model_loading_seconds",
            "Time starting a model of a multi-model variant took.",
        ),
        UNLOADING_TIME: (
            "sabio_model_unloading_seconds",
            "Time stopping a model of a multi-model variant took.",
        ),
    }

    def seconds(self, endpoint: str, variant: str, metric: str, seconds: float) -> None:
        """One time sample of `metric`, taken in seconds and kept in microseconds."""
        self.sample(endpoint, variant, metric, max(0.0, seconds) * 1e6)
