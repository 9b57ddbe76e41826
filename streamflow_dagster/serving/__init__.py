"""The online API: features and churn predictions from Feast's online store and the registry."""
