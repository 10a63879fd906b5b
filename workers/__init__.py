"""RQ jobs and the AWS / Terraform engines they drive."""
