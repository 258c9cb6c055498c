"""Compute backends: where a unit of work (a job's or an endpoint's instance) runs."""
