"""Monitoring: feature drift between months and realized model performance once labels land."""
