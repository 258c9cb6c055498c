"""The wire protocols: JSON 1.1 control plane and rest-json runtime, validated against botocore."""
