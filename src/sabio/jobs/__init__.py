"""What training and processing jobs share: the `/opt/ml` layout, data channels, the
training toolkit's environment, and running a job's instances."""
