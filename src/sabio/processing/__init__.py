"""CreateProcessingJob, DescribeProcessingJob, ListProcessingJobs, StopProcessingJob: data
preparation and evaluation under the SageMaker processing container contract."""
