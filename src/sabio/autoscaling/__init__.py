"""Application Auto Scaling for endpoint variants: scalable targets, policies, activities."""
