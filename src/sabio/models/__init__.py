"""CreateModel, DescribeModel, ListModels, DeleteModel."""
