"""CreateTrainingJob, DescribeTrainingJob, ListTrainingJobs, StopTrainingJob: real training runs
under the SageMaker training container contract."""
