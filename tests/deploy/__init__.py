"""Deployment checks: the image, the Helm chart and docker-compose, with the real tools."""
