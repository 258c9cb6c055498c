"""What running work leaves behind for people to read: CloudWatch-style log groups and streams
(`logs`) and the training metrics scraped from them (`metrics`).

Platform layer: capabilities write here, the Logs API and `sabio logs` read from here."""
