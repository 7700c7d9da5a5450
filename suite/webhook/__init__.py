"""Git push webhooks: GitHub, GitLab and Gitea push events start a release."""
